// The room page's behaviour on top of htmx and its ws extension.
// The server sends whole message fragments; this file keeps them idempotent,
// catches up after (re)connecting, shows the connection state and handles keys.
(function () {
  "use strict";

  // Close codes the ws extension already retries; 4xxx are the server's final word.
  const RETRIED_BY_HTMX = [1006, 1011, 1012, 1013];
  let leaving = false;
  let stickToBottom = true;

  const messages = () => document.getElementById("messages");

  function setConnection(state) {
    const el = document.getElementById("connection-state");
    if (!el) return;
    el.dataset.state = state;
    const label = el.querySelector(".connection__label");
    label.textContent = label.dataset[state] || state;
  }

  function updateBusy() {
    const busy = !!document.querySelector('#messages [data-status="streaming"]');
    const button = document.querySelector("#composer button[type=submit]");
    if (button) button.disabled = busy;
    const list = messages();
    if (list) list.setAttribute("aria-busy", String(busy));
  }

  // Where to resume: before the oldest reply still streaming (its final
  // state is needed), else after the newest message shown.
  function syncPoint() {
    const list = messages();
    if (!list) return 0;
    const articles = [...list.querySelectorAll("article[data-pk]")];
    const streaming = articles.filter((a) => a.dataset.status === "streaming");
    const pks = (streaming.length ? streaming : articles).map((a) => Number(a.dataset.pk));
    if (!pks.length) return 0;
    return streaming.length ? Math.min(...pks) - 1 : Math.max(...pks);
  }

  // Upsert: a message already on the page is replaced only by a newer seq, so
  // duplicated or reordered updates cannot take the text backwards.
  document.addEventListener("htmx:oobBeforeSwap", (event) => {
    const { target, fragment } = event.detail;
    if (target.id !== "messages") return;
    for (const incoming of [...fragment.children]) {
      const current = incoming.id && document.getElementById(incoming.id);
      if (!current) continue;
      if (Number(incoming.dataset.seq) > Number(current.dataset.seq)) {
        current.replaceWith(incoming);
        htmx.process(incoming);
      } else {
        incoming.remove();
      }
    }
  });

  document.addEventListener("htmx:wsConnecting", () => setConnection("connecting"));

  document.addEventListener("htmx:wsOpen", (event) => {
    setConnection("online");
    event.detail.socketWrapper.send(JSON.stringify({ action: "sync", after: syncPoint() }));
  });

  // The session expired or its user logged out (4401): say so, with a link to
  // log in again. Nothing retries, and the composer keeps its text.
  function showSignedOut() {
    setConnection("signedout");
    const login = document.getElementById("signed-out-login");
    if (login) login.hidden = false;
    const button = document.querySelector("#composer button[type=submit]");
    if (button) button.disabled = true;
  }

  document.addEventListener("htmx:wsClose", (event) => {
    const code = event.detail.event.code;
    if (code === 4401) {
      showSignedOut();
      return;
    }
    // The server's final word: the room is gone, or the owner removed this user.
    if (code === 4404 || code === 4403) {
      setConnection(code === 4404 ? "gone" : "removed");
      const button = document.querySelector("#composer button[type=submit]");
      if (button) button.disabled = true;
      return;
    }
    setConnection("offline");
    // A server that shut down cleanly (1000, 1001) is not retried by the
    // extension; a page must never be left stuck, so retry those too.
    if (!leaving && code < 4000 && !RETRIED_BY_HTMX.includes(code)) {
      setTimeout(() => event.detail.socketWrapper.reconnect(), 500 + Math.random() * 1500);
    }
  });

  window.addEventListener("pagehide", () => { leaving = true; });

  document.addEventListener("htmx:wsBeforeMessage", () => {
    const list = messages();
    if (list) stickToBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
  });

  document.addEventListener("htmx:wsAfterMessage", () => {
    updateBusy();
    const list = messages();
    if (list && stickToBottom) list.scrollTop = list.scrollHeight;
  });

  // The server answers a send with a fresh composer; keep typing where we were.
  document.addEventListener("htmx:oobAfterSwap", (event) => {
    if (event.detail.target.id === "composer" || event.target.id === "composer") {
      const field = document.querySelector("#composer textarea");
      if (field && document.activeElement === document.body) field.focus();
    }
  });

  // Enter sends, Shift+Enter adds a line.
  document.addEventListener("keydown", (event) => {
    const field = event.target;
    if (!(field instanceof HTMLTextAreaElement) || !field.closest("#composer")) return;
    if (event.key !== "Enter" || event.shiftKey || event.isComposing) return;
    event.preventDefault();
    const button = field.form.querySelector("button[type=submit]");
    if (!button.disabled && field.value.trim()) field.form.requestSubmit();
  });

  document.addEventListener("DOMContentLoaded", () => {
    updateBusy();
    const list = messages();
    if (list) list.scrollTop = list.scrollHeight;
  });
})();
