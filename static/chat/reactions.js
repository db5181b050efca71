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

  // Reactions changed while the socket was down reach no catch-up by version:
  // after a reconnect the page asks for its messages' reactions as they are now.
  let opened = false;
  document.addEventListener("htmx:wsOpen", () => {
    const source = document.getElementById("reactions-source");
    const ids = [...document.querySelectorAll("#messages .reactions")].map((el) => el.id.slice(10));
    if (opened && source && ids.length) {
      htmx.ajax("GET", `${source.dataset.url}?ids=${ids.join(",")}`, { target: source, swap: "none" });
    }
    opened = true;
  });

  document.addEventListener("htmx:wsAfterMessage", markOwn);
  document.addEventListener("htmx:afterSwap", markOwn);
  document.addEventListener("htmx:oobAfterSwap", markOwn);
  document.addEventListener("DOMContentLoaded", markOwn);
})();
