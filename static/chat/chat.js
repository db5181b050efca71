// The room page's behaviour on top of htmx and its ws extension.
// The server sends whole message fragments; this file keeps them idempotent,
// catches up after (re)connecting, shows the connection state and handles keys.
(function () {
  "use strict";

  // Close codes the ws extension already retries; 4xxx are the server's final word.
  const RETRIED_BY_HTMX = [1006, 1011, 1012, 1013];
  // Broadcasts are delivered at most once: a streaming message silent this long
  // (ms) may have missed its final state, so the page asks for it, then less often.
  const SILENT_AFTER = 2000;
  const ASK_AT_MOST_EVERY = 30000;
  let leaving = false;
  let stickToBottom = true;
  let socket = null;
  const lastHeard = new Map(); // article id -> when its last version arrived
  const nextAsk = new Map(); // article id -> [earliest next ask, wait after it]

  const messages = () => document.getElementById("messages");

  function setConnection(state) {
    const el = document.getElementById("connection-state");
    if (!el) return;
    el.dataset.state = state;
    const label = el.querySelector(".connection__label");
    label.textContent = label.dataset[state] || state;
  }

  // People may send while a reply streams: their message waits its turn (chat/queue.py).
  function updateBusy() {
    const busy = !!document.querySelector('#messages [data-status="streaming"]');
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

  // Ask the server for one message's state, if it has a newer version than ours;
  // at most once per message per wait, the wait doubling while nothing changes.
  function askFor(article) {
    const now = Date.now();
    const [earliest, wait] = nextAsk.get(article.id) || [0, SILENT_AFTER];
    if (!socket || now < earliest) return;
    nextAsk.set(article.id, [now + wait, Math.min(wait * 2, ASK_AT_MOST_EVERY)]);
    const frame = { action: "sync", message: Number(article.dataset.pk), seq: Number(article.dataset.seq) };
    socket.send(JSON.stringify(frame));
  }

  // A streaming reply is replaced up to 25 times a second; its Stop button must
  // stay the same element, in the page, or a click that starts on one version
  // and ends on the next lands nowhere, and keyboard focus falls to the body.
  // So an unchanged control stays where it is and the rest of the message is
  // replaced around it. Returns the element now showing the message.
  function keepControls(current, incoming) {
    const held = current.querySelector(":scope > form.message__action");
    const fresh = incoming.querySelector(":scope > form.message__action");
    if (!held || !fresh || !held.isEqualNode(fresh)) {
      current.replaceWith(incoming);
      return incoming;
    }
    for (const name of current.getAttributeNames()) {
      if (!incoming.hasAttribute(name)) current.removeAttribute(name);
    }
    for (const name of incoming.getAttributeNames()) {
      current.setAttribute(name, incoming.getAttribute(name));
    }
    const children = [...incoming.childNodes];
    const at = children.indexOf(fresh);
    for (const node of [...current.childNodes]) if (node !== held) node.remove();
    held.before(...children.slice(0, at));
    held.after(...children.slice(at + 1));
    incoming.remove(); // an empty shell now, which htmx would otherwise append
    return current;
  }

  function heard(article) {
    lastHeard.set(article.id, Date.now());
    nextAsk.delete(article.id);
  }

  // Upsert: a message already on the page is replaced only by a newer seq, so
  // duplicated or reordered updates cannot take the text backwards. A gap in
  // seq means versions were missed; the newest is what counts, but a streaming
  // one is checked with the server.
  document.addEventListener("htmx:oobBeforeSwap", (event) => {
    const { target, fragment } = event.detail;
    if (target.id !== "messages") return;
    for (const incoming of [...fragment.children]) {
      const current = incoming.id && document.getElementById(incoming.id);
      if (!current) {
        if (incoming.id) heard(incoming);
        continue;
      }
      const seq = Number(incoming.dataset.seq);
      const held = Number(current.dataset.seq);
      if (seq > held) {
        const shown = keepControls(current, incoming);
        htmx.process(shown);
        heard(shown);
        if (seq > held + 1 && shown.dataset.status === "streaming") askFor(shown);
      } else {
        incoming.remove();
      }
    }
  });

  // A streaming message that has fallen silent may have missed its final state.
  setInterval(() => {
    const now = Date.now();
    for (const article of document.querySelectorAll('#messages article[data-status="streaming"]')) {
      if (!lastHeard.has(article.id)) lastHeard.set(article.id, now);
      if (now - lastHeard.get(article.id) > SILENT_AFTER) askFor(article);
    }
  }, 1000);

  function catchUp() {
    if (socket) socket.send(JSON.stringify({ action: "sync", after: syncPoint() }));
  }

  document.addEventListener("htmx:wsConnecting", () => setConnection("connecting"));

  document.addEventListener("htmx:wsOpen", (event) => {
    setConnection("online");
    socket = event.detail.socketWrapper;
    catchUp();
  });

  // The session expired or its user logged out (4401): say so, with a link to
  // log in again. Nothing retries, and the composer keeps its text.
  function showSignedOut() {
    setConnection("signedout");
    const login = document.getElementById("signed-out-login");
    if (login) login.hidden = false;
  }

  document.addEventListener("htmx:wsClose", (event) => {
    socket = null;
    const code = event.detail.event.code;
    if (code === 4401) {
      showSignedOut();
      return;
    }
    // The server's final word: the room is gone, the owner removed this user,
    // or this user has too many sockets open. The composer stays, Send disabled.
    const final = { 4404: "gone", 4403: "removed", 4429: "toomany" }[code];
    if (final) {
      setConnection(final);
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

  // The server replaces #sync-request when broadcasts may have been lost (its
  // Redis feed came back after a drop): catch up then.
  document.addEventListener("htmx:oobAfterSwap", (event) => {
    if (event.detail.target.id === "sync-request" || event.target.id === "sync-request") catchUp();
  });

  // htmx or its ws extension did not load (static/chat/ws-loader.js): nothing will connect.
  document.addEventListener("chat:unloaded", () => setConnection("unloaded"));

  document.addEventListener("DOMContentLoaded", () => {
    updateBusy();
    const list = messages();
    if (list) list.scrollTop = list.scrollHeight;
  });
})();
