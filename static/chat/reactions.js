// Reactions and feedback under messages. The server renders a message's reactions
// once for every reader (chat/reactions.py): this marks the chips that are this
// reader's own, and tells the react form which emoji was picked.
(function () {
  "use strict";

  function mine() {
    const room = document.querySelector(".room[data-user]");
    return room ? room.dataset.user : null;
  }

  function markOwn() {
    const user = mine();
    if (!user) return;
    for (const chip of document.querySelectorAll(".reactions__chip")) {
      const users = (chip.dataset.users || "").split(" ");
      chip.setAttribute("aria-pressed", String(users.includes(user)));
    }
  }

  // The clicked emoji goes in the form's one emoji field; the ws extension then
  // sends {"action": "react", "message": id, "emoji": ...}.
  document.addEventListener("click", (event) => {
    const button = event.target.closest && event.target.closest(".reactions button[data-emoji]");
    if (!button) return;
    button.form.elements.emoji.value = button.dataset.emoji;
    const picker = button.closest("details");
    if (picker) picker.open = false;
  });

  document.addEventListener("htmx:wsAfterMessage", markOwn);
  document.addEventListener("htmx:afterSwap", markOwn);
  document.addEventListener("DOMContentLoaded", markOwn);
})();
