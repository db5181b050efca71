// The room's composer. A message is sent once: the composer clears and locks the
// moment it sends, with an id of the page's own that the server saves once
// (services.message_send), and unlocks when the server answers. The answer
// replaces #composer-answer only, never the form, so what is typed meanwhile
// (an IME composition included) stays. Nothing is sent, or queued, while the
// socket is down: Send is disabled and the composer says so.
(function () {
  "use strict";

  // Closes after which this page sends nothing more, and the connection label naming why.
  const FINAL = { 4401: "signedout", 4403: "removed", 4404: "gone", 4429: "toomany" };
  let socket = null; // the ws extension's socket wrapper, while open
  let closedFor = ""; // a FINAL state: nothing will be sent again
  let pending = null; // { id, text }: sent, not answered yet
  let unsent = null; // { id, text }: put back after a lost answer; sent again, it keeps its id
  let dropped = false; // the socket was open once, or failed to open: "offline" is news
  let composing = false;
  let toRestore = "";

  const form = () => document.getElementById("composer");
  const field = () => form()?.querySelector("textarea");
  const button = () => form()?.querySelector("button[type=submit]");

  function newId() {
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    bytes[6] = (bytes[6] & 0x0f) | 0x40; // a version 4 UUID
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    const hex = [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
    return [hex.slice(0, 8), hex.slice(8, 12), hex.slice(12, 16), hex.slice(16, 20), hex.slice(20)].join("-");
  }

  // Characters as the server counts them (code points, not UTF-16 units).
  const length = (text) => [...text].length;

  function overLimit(textarea) {
    const limit = Number(textarea.dataset.limit);
    return limit > 0 && length(textarea.value) > limit;
  }

  function finalReason() {
    const label = document.querySelector("#connection-state .connection__label");
    return (label && label.dataset[closedFor]) || "";
  }

  // The note under the text and the state of Send, from what the page knows now;
  // `urgent` when a send was just held back, which the note then stresses.
  function update(urgent) {
    const composer = form();
    const textarea = field();
    if (!composer || !textarea) return;
    const note = document.getElementById("composer-note");
    let text = "";
    if (closedFor) text = finalReason();
    else if (overLimit(textarea)) {
      text = composer.dataset.tooLong
        .replace("{count}", length(textarea.value).toLocaleString())
        .replace("{limit}", Number(textarea.dataset.limit).toLocaleString());
    } else if (unsent) text = composer.dataset.lost;
    else if (!socket && (dropped || urgent)) text = composer.dataset.offline;
    if (note.textContent !== text) {
      note.textContent = text;
      note.classList.remove("composer__note--urgent");
    }
    if ((urgent || closedFor) && text) note.classList.add("composer__note--urgent");
    button().disabled = !socket || !!closedFor || !!pending || overLimit(textarea);
    composer.setAttribute("aria-busy", String(!!pending));
  }

  // Text the server refused, or whose answer was lost, goes back in front of anything typed since.
  function restore(text) {
    if (composing) {
      toRestore = text; // setting the value now would end the composition
      return;
    }
    const textarea = field();
    textarea.value = textarea.value.trim() ? `${text}\n${textarea.value}` : text;
  }

  function send() {
    const textarea = field();
    if (!textarea || !textarea.value.trim()) return;
    if (closedFor || !socket || overLimit(textarea)) {
      update(true);
      return;
    }
    if (pending) return; // one send at a time: a double Enter or double click is one message
    const text = textarea.value;
    const id = unsent && unsent.text === text ? unsent.id : newId();
    unsent = null;
    pending = { id, text };
    textarea.value = "";
    if (document.activeElement === button()) textarea.focus();
    // Straight to the socket: the extension's send() would queue it while closed.
    socket.sendImmediately(JSON.stringify({ content: text, client_id: id }), form());
    // A spent budget's notice was about an earlier question; the server says so again if need be.
    document.getElementById("budget-notice")?.replaceChildren();
    update();
  }

  document.addEventListener("submit", (event) => {
    if (event.target.id !== "composer") return;
    event.preventDefault();
    send();
  });

  // Enter sends, Shift+Enter adds a line; Enter that ends an IME composition only ends it.
  document.addEventListener("keydown", (event) => {
    const textarea = event.target;
    if (!(textarea instanceof HTMLTextAreaElement) || !textarea.closest("#composer")) return;
    if (event.key !== "Enter" || event.shiftKey || event.isComposing || event.keyCode === 229) return;
    event.preventDefault();
    send();
  });

  document.addEventListener("compositionstart", () => { composing = true; });
  document.addEventListener("compositionend", () => {
    composing = false;
    if (toRestore) {
      const text = toRestore;
      toRestore = "";
      setTimeout(() => { restore(text); update(); });
    }
  });

  document.addEventListener("input", (event) => {
    if (event.target === field()) update();
  });

  // The server's answer to a send: saved, or refused with the reason shown in #composer-answer.
  document.addEventListener("htmx:wsAfterMessage", () => {
    const answer = document.getElementById("composer-answer");
    if (!answer || !answer.dataset.outcome) return;
    const { outcome } = answer.dataset;
    answer.dataset.outcome = ""; // read once
    if (!pending || answer.dataset.for !== pending.id) return;
    if (outcome === "refused") restore(pending.text);
    pending = null;
    update();
  });

  // Other controls (Stop, Regenerate, Edit, Cancel) are ws-send forms: the
  // extension would hold their frames while offline and replay them on reconnect.
  document.addEventListener("htmx:wsConfigSend", (event) => {
    if (socket && !closedFor) return;
    event.preventDefault();
    update(true);
  });

  document.addEventListener("htmx:wsOpen", (event) => {
    if (!form()) return;
    socket = event.detail.socketWrapper;
    socket.queue.length = 0; // nothing is replayed by itself
    update();
  });

  document.addEventListener("htmx:wsClose", (event) => {
    if (!form()) return;
    socket = null;
    dropped = true;
    closedFor = FINAL[event.detail.event.code] || "";
    if (pending) {
      // Saved or not, the page cannot tell: the text comes back, with its id.
      unsent = pending;
      pending = null;
      restore(unsent.text);
    }
    update();
  });

  document.addEventListener("DOMContentLoaded", () => update());
})();
