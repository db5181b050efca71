// htmx's ws extension, loaded only once htmx has: as two independent files, a
// page whose htmx failed to load (the network dropped, or the server restarted,
// mid-load) would run the extension and throw "htmx is not defined". The
// sockets' elements carry data-ws-connect until the extension is here; htmx
// then processes them again, which opens the socket and wires their ws-send
// forms. If either file is missing, the page says so (chat.js, "chat:unloaded").
(function () {
  "use strict";

  const unloaded = () => document.dispatchEvent(new CustomEvent("chat:unloaded"));
  const src = document.currentScript.dataset.extension;

  function connect() {
    for (const el of document.querySelectorAll("[data-ws-connect]")) {
      el.setAttribute("ws-connect", el.dataset.wsConnect);
      htmx.process(el);
    }
  }

  function load() {
    if (!window.htmx) {
      unloaded();
      return;
    }
    const script = document.createElement("script");
    script.src = src;
    script.onload = connect;
    script.onerror = unloaded;
    document.head.append(script);
  }

  // After every deferred script (chat.js listens for "chat:unloaded") and htmx's
  // own first pass over the page, both of which DOMContentLoaded follows.
  document.addEventListener("DOMContentLoaded", load);
})();
