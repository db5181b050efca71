// The room page's tools beside the chat itself: the Edit control on one's own
// last message, and the message a search result opened.
(function () {
  "use strict";

  const messages = () => document.getElementById("messages");

  // The server renders each message once for every tab, so it cannot know whose
  // tab it is in: show Edit on the last user message if it is this user's.
  function showEdit() {
    const list = messages();
    const room = list && list.closest(".room");
    if (!room) return;
    const mine = room.dataset.user;
    const own = [...list.querySelectorAll("article.message--user")];
    const last = own[own.length - 1];
    for (const edit of list.querySelectorAll(".message__edit")) {
      const article = edit.closest("article");
      edit.hidden = !(article === last && article.dataset.author === mine);
    }
  }

  // Whole fragments only: a streaming reply's deltas never change whose message is last.
  document.addEventListener("htmx:wsAfterMessage", showEdit);
  document.addEventListener("htmx:afterSwap", showEdit);

  // Esc closes an open Edit form and puts the focus back on its toggle.
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape") return;
    const edit = event.target.closest && event.target.closest(".message__edit[open]");
    if (!edit) return;
    edit.open = false;
    edit.querySelector("summary").focus();
  });

  document.addEventListener("DOMContentLoaded", () => {
    showEdit();
    // chat.js scrolled to the newest message; a search result wants its own.
    const found = document.querySelector("#messages .message--found");
    if (found) found.scrollIntoView({ block: "center" });
  });
})();
