// "New since you left" and Catch me up. Opening a room with messages newer than
// the last visit scrolls to the divider before them. The recap's links
// (chat/recaps.py) open a message in place when the page shows it: the URL's
// #message-<id> then targets it, which chat.css outlines; otherwise they load the
// room at that message.
(function () {
  "use strict";

  document.addEventListener("click", (event) => {
    if (event.target.closest?.(".recap__close")) {
      const recap = document.getElementById("recap");
      if (recap) recap.hidden = true;
      return;
    }
    const link = event.target.closest?.("#recap a[href]");
    if (!link) return;
    const url = new URL(link.href);
    if (url.origin !== location.origin) return;
    const shown = url.pathname === location.pathname && url.hash && document.getElementById(url.hash.slice(1));
    // Not a new tab (the recap's Markdown opens links in one): this room, here.
    event.preventDefault();
    if (!shown) {
      location.assign(url);
      return;
    }
    location.hash = url.hash;
    shown.scrollIntoView({ block: "center" });
  });

  document.addEventListener("DOMContentLoaded", () => {
    // A search result wants its own message (room-tools.js).
    if (document.querySelector("#messages .message--found")) return;
    const divider = document.getElementById("since-divider");
    if (divider) divider.scrollIntoView({ block: "start" });
  });
})();
