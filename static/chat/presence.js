// Shared rooms on top of htmx's ws extension: typing notices, the AI's queue and
// the live room list. The server sends the fragments; this file sends typing
// events, expires notices, shows Cancel on the reader's own queued questions
// and keeps the room list free of duplicate cards.
(function () {
  "use strict";

  // One typing event per this many ms at most (the server throttles too).
  const TYPING_EVERY = 2500;
  // A notice goes this long after the last event that renewed it.
  const NOTICE_FOR = 5000;
  const timers = new Map();
  let lastTyping = 0;
  let socket = null;

  const me = () => document.querySelector("section.room")?.dataset.user;

  function expire(notice) {
    clearTimeout(timers.get(notice.id));
    timers.set(notice.id, setTimeout(() => {
      document.getElementById(notice.id)?.remove();
      timers.delete(notice.id);
    }, NOTICE_FOR));
  }

  function showOwnCancels() {
    const user = me();
    for (const item of document.querySelectorAll("#queue .queue__item")) {
      const cancel = item.querySelector(".queue__cancel");
      if (cancel) cancel.hidden = item.dataset.author !== user;
    }
  }

  // A room's socket announces itself, to count as someone here.
  document.addEventListener("htmx:wsOpen", (event) => {
    if (!me()) return;
    socket = event.detail.socketWrapper;
    socket.send(JSON.stringify({ action: "join" }));
  });
  document.addEventListener("htmx:wsClose", () => { socket = null; });

  // Upserts: a typing notice or a room card replaces its older copy.
  document.addEventListener("htmx:oobBeforeSwap", (event) => {
    const { target, fragment } = event.detail;
    // A message from someone, or their question joining the queue, ends their notice.
    if (target.id === "messages" || target.id === "queue") {
      for (const sent of fragment.querySelectorAll("[data-author]")) {
        const author = sent.dataset.author;
        if (author && !document.getElementById(sent.id)) {
          document.getElementById(`typing-${author}`)?.remove();
        }
      }
      return;
    }
    if (target.id !== "typing" && target.id !== "room-list") return;
    for (const incoming of [...fragment.children]) {
      if (incoming.id) document.getElementById(incoming.id)?.remove();
    }
    if (target.id === "room-list") target.querySelector(":scope > .empty")?.remove();
  });

  // The queue is replaced whole; show Cancel again on this reader's own questions.
  document.addEventListener("htmx:wsAfterMessage", showOwnCancels);

  document.addEventListener("input", (event) => {
    if (!(event.target instanceof HTMLTextAreaElement) || !event.target.closest("#composer")) return;
    const now = Date.now();
    if (!socket || now - lastTyping < TYPING_EVERY || !event.target.value.trim()) return;
    lastTyping = now;
    socket.send(JSON.stringify({ action: "typing" }));
  });

  // After a send, the next keystroke is news again.
  document.addEventListener("htmx:wsAfterSend", (event) => {
    if (event.target.id === "composer") lastTyping = 0;
  });

  document.addEventListener("DOMContentLoaded", () => {
    showOwnCancels();
    // Each notice swapped in (new, or renewing an older copy) starts its own countdown.
    const notices = document.getElementById("typing");
    if (!notices) return;
    new MutationObserver((records) => {
      for (const record of records) {
        for (const node of record.addedNodes) {
          if (node.classList?.contains("typing-notice")) expire(node);
        }
      }
    }).observe(notices, { childList: true });
  });
})();
