// The room page's behaviour on top of htmx and its ws extension.
// The server sends whole message fragments, and a streaming reply's deltas
// (chat/deltas.py); this file keeps them idempotent, applies the deltas,
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
  // A streaming reply's tail HTML exactly as the server sent it, which a delta
  // extends; unknown (absent) after a snapshot that already had text.
  const tails = new Map(); // article id -> tail HTML

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

  // The room's version this page is up to date with (Room.version on the server).
  // Each broadcast change carries the next one; one that arrives early waits in
  // `ahead` until those before it have come. A catch-up asks for every change
  // after `version`, and answers with the version it brings the page up to.
  let version = 0;
  const ahead = new Set();

  function sawVersion(seen) {
    if (seen > version) ahead.add(seen);
    while (ahead.delete(version + 1)) version += 1;
  }

  function caughtUp(upTo) {
    version = Math.max(version, upTo);
    for (const seen of ahead) if (seen <= version) ahead.delete(seen);
    sawVersion(0);
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

  // Screen readers hear each finished block of a reply once, and each message
  // that arrives whole, from a live region of its own (#messages is not one).
  function announce(nodes) {
    const region = document.getElementById("announcer");
    const text = nodes.map((node) => node.textContent.trim()).filter(Boolean).join(" ");
    if (!region || !text) return;
    const line = document.createElement("p");
    line.textContent = text;
    region.append(line);
    while (region.childElementCount > 3) region.firstElementChild.remove();
  }

  // Other scripts (copy.js, room-tools.js) set up what chat.js puts in, and only that.
  function added(node) {
    node.dispatchEvent(new CustomEvent("chat:added", { bubbles: true }));
  }

  function rememberTail(article) {
    const tail = article.querySelector(".message__tail");
    if (tail && !tail.hasChildNodes()) tails.set(article.id, "");
    else tails.delete(article.id);
  }

  // A frame's deltas (chat/deltas.py): a JSON header line, then the inserted HTML;
  // deltas merged while the tab read slowly are separated by NUL.
  function parseDeltas(frame) {
    return frame.split("\u0000").map((piece) => {
      const at = piece.indexOf("\n");
      const [message, seq, keep, end, cuts = [], base = seq - 1, start = 0] = JSON.parse(piece.slice(0, at));
      return { message, seq, keep, end, cuts, base, start, text: piece.slice(at + 1) };
    });
  }

  // A delta applies only if it yields the reply as it was at its seq: a whole one
  // (keep and end 0) to a page holding at least its first block's predecessors,
  // any other to the version it was made from. Otherwise the page keeps showing
  // what it has, an older but consistent text, and asks for the message.
  // Returns whether the frame's next delta may follow.
  function applyDelta(delta) {
    const article = document.getElementById(`message-${delta.message}`);
    if (!article || article.dataset.status !== "streaming") return false;
    const held = Number(article.dataset.seq);
    const count = Number(article.dataset.blocks || 0);
    const tail = article.querySelector(".message__tail");
    if (!tail) return false;
    if (delta.seq <= held) return true;
    const whole = !delta.keep && !delta.end;
    const skip = whole ? count - delta.start : 0; // blocks the page already has
    if (whole ? skip < 0 || skip > delta.cuts.length : delta.base !== held) {
      askFor(article);
      return false;
    }
    const known = tails.get(article.id);
    if (!whole && known === undefined) {
      askFor(article); // the answer is followed by a whole tail
      return false;
    }
    let html = whole ? delta.text : known.slice(0, delta.keep) + delta.text + known.slice(known.length - delta.end);
    const blocks = [];
    let at = 0;
    delta.cuts.forEach((cut, index) => {
      if (index >= skip) {
        const template = document.createElement("template");
        template.innerHTML = html.slice(at, at + cut);
        blocks.push(...template.content.childNodes);
      }
      at += cut;
    });
    html = html.slice(at);
    tail.before(...blocks);
    tail.innerHTML = html;
    tails.set(article.id, html);
    article.dataset.seq = String(delta.seq);
    article.dataset.blocks = String(count + delta.cuts.length - skip);
    heard(article);
    const elements = blocks.filter((node) => node.nodeType === Node.ELEMENT_NODE);
    elements.forEach(added);
    announce(elements);
    return true;
  }

  // Upsert: a message already on the page is replaced only by a newer seq, so
  // duplicated or reordered updates cannot take the text backwards. A gap in
  // seq means versions were missed; the newest is what counts, but a streaming
  // one is checked with the server.
  document.addEventListener("htmx:oobBeforeSwap", (event) => {
    const { target, fragment } = event.detail;
    if (target.id !== "messages") return;
    if (fragment.getAttribute && fragment.getAttribute("hx-swap-oob") === "innerHTML") {
      // The room's history was cleared: the list starts again with these.
      for (const article of fragment.querySelectorAll("article[data-pk]")) {
        heard(article);
        rememberTail(article);
      }
      return;
    }
    const versions = [...fragment.querySelectorAll(":scope > article[data-version]")];
    const changed = Math.max(0, ...versions.map((a) => Number(a.dataset.version)));
    for (const incoming of [...fragment.children]) {
      const current = incoming.id && document.getElementById(incoming.id);
      if (!current) {
        if (incoming.id) {
          heard(incoming);
          rememberTail(incoming);
          if (incoming.dataset.status !== "streaming") {
            announce([...incoming.querySelectorAll(":scope > .message__author, :scope > .message__body")]);
          }
        }
        continue;
      }
      const seq = Number(incoming.dataset.seq);
      const held = Number(current.dataset.seq);
      if (seq > held) {
        // A reply's last words: what its tail showed, now final (read before the
        // article takes the incoming attributes).
        const shownBlocks = Number(current.dataset.blocks || 0);
        const finalBody =
          current.dataset.status === "streaming" && incoming.dataset.status !== "streaming"
            ? incoming.querySelector(".message__body")
            : null;
        const shown = keepControls(current, incoming);
        if (finalBody) announce([...finalBody.children].slice(shownBlocks));
        htmx.process(shown);
        heard(shown);
        rememberTail(shown);
        added(shown);
        if (seq > held + 1 && shown.dataset.status === "streaming") askFor(shown);
      } else {
        incoming.remove();
      }
    }
    sawVersion(changed);
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
    if (socket) socket.send(JSON.stringify({ action: "sync", since: version }));
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

  document.addEventListener("htmx:wsBeforeMessage", (event) => {
    const list = messages();
    if (list) stickToBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
    const message = event.detail.message;
    if (typeof message !== "string" || !message.startsWith("[")) return;
    // Not HTML for htmx to swap: applied here, and no other listener runs for it.
    event.preventDefault();
    for (const delta of parseDeltas(message)) if (!applyDelta(delta)) break;
    if (list && stickToBottom) list.scrollTop = list.scrollHeight;
  });

  document.addEventListener("htmx:wsAfterMessage", () => {
    updateBusy();
    const list = messages();
    if (list && stickToBottom) list.scrollTop = list.scrollHeight;
  });

  // The server replaces #sync-request when broadcasts may have been lost (its
  // Redis feed came back after a drop): catch up then.
  document.addEventListener("htmx:oobAfterSwap", (event) => {
    const swapped = (id) => event.detail.target.id === id || event.target.id === id;
    if (swapped("sync-request")) catchUp();
    if (swapped("room-version")) caughtUp(Number(document.getElementById("room-version").dataset.version));
    if (swapped("room-reset")) sawVersion(Number(document.getElementById("room-reset").dataset.version));
  });

  // htmx or its ws extension did not load (static/chat/ws-loader.js): nothing will connect.
  document.addEventListener("chat:unloaded", () => setConnection("unloaded"));

  document.addEventListener("DOMContentLoaded", () => {
    const held = document.getElementById("room-version");
    if (held) version = Number(held.dataset.version);
    for (const article of document.querySelectorAll('#messages article[data-status="streaming"]')) {
      rememberTail(article);
    }
    updateBusy();
    const list = messages();
    if (list) list.scrollTop = list.scrollHeight;
  });
})();
