// Reactions and feedback under messages. The server renders a message's reactions
// once for every reader (chat/reactions.py): this marks the chips that are this
// reader's own, and sends the page's one react form for the message and emoji
// clicked. The page holds the picker's choices and the feedback fields once: a
// picker gets its choices when it opens, and each reply's empty feedback form its
// fields as it arrives.
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

  function fillFeedback() {
    const fields = document.getElementById("feedback-fields");
    if (!fields) return;
    for (const form of document.querySelectorAll("form.feedback:empty")) {
      form.append(fields.content.cloneNode(true));
      const id = `feedback-comment-${form.id.slice("feedback-".length)}`;
      form.querySelector("textarea").id = id;
      form.querySelector("label").htmlFor = id;
    }
  }

  function update() {
    markOwn();
    fillFeedback();
  }

  // A picker gets its choices as its summary is clicked (Enter and Space click it
  // too), before it opens: the next Tab reaches them.
  document.addEventListener("click", (event) => {
    const summary = event.target.closest && event.target.closest(".reactions__picker > summary");
    const choices = document.getElementById("reaction-choices");
    if (!summary || !choices || summary.parentElement.querySelector("button")) return;
    summary.parentElement.append(choices.content.cloneNode(true));
  });

  // The clicked emoji and its message go in the form's fields; the ws extension then
  // sends {"action": "react", "message": id, "emoji": ...}.
  document.addEventListener("click", (event) => {
    const button = event.target.closest && event.target.closest(".reactions button[data-emoji]");
    if (!button || !button.form) return;
    button.form.elements.emoji.value = button.dataset.emoji;
    button.form.elements.message.value = button.closest(".reactions").id.slice("reactions-".length);
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

  document.addEventListener("htmx:wsAfterMessage", update);
  document.addEventListener("htmx:afterSwap", update);
  document.addEventListener("htmx:oobAfterSwap", update);
  document.addEventListener("DOMContentLoaded", update);
})();
