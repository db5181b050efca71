// The room page's tools beside the chat itself: the Edit control on one's own
// last message, the divider where the model's memory begins, the message a search result opened, the header's menu on a phone,
// and the way back from a room that is gone.
(function () {
  "use strict";

  const messages = () => document.getElementById("messages");

  // The server renders each message once for every tab, so it cannot know whose
  // tab it is in: Edit goes on the last user message if it is this user's, made
  // from the page's one edit form (#edit-fields) with the message's text.
  function showEdit() {
    const list = messages();
    const room = list && list.closest(".room");
    const fields = document.getElementById("edit-fields");
    if (!room || !fields) return;
    const own = [...list.querySelectorAll("article.message--user")];
    const last = own[own.length - 1];
    const editable = last && last.dataset.author === room.dataset.user ? last : null;
    for (const edit of list.querySelectorAll(".message__edit")) {
      if (edit.closest("article") !== editable) edit.remove();
    }
    const tools = editable && editable.querySelector(".message__tools");
    if (!tools || tools.querySelector(".message__edit")) return;
    const edit = fields.content.firstElementChild.cloneNode(true);
    const id = `edit-${editable.dataset.pk}`;
    edit.querySelector("input[name=message]").value = editable.dataset.pk;
    edit.querySelector("label").htmlFor = id;
    const text = edit.querySelector("textarea");
    text.id = id;
    text.textContent = tools.querySelector("template.message__source").content.textContent;
    tools.append(edit);
    htmx.process(edit);
  }

  // Whole fragments only: a streaming reply's deltas never change whose message is last.
  document.addEventListener("htmx:wsAfterMessage", showEdit);
  document.addEventListener("htmx:afterSwap", showEdit);

  // Where the model's memory begins: one divider, before the oldest message the
  // next request still sends (#context-start, updated with each reply's end).
  // None when that message is not on the page: everything shown is sent.
  function placeDivider() {
    const list = messages();
    const marker = document.getElementById("context-start");
    if (!list || !marker) return;
    const start = marker.dataset.message && document.getElementById("message-" + marker.dataset.message);
    const dividers = [...list.querySelectorAll(".context-divider")];
    let divider = dividers.shift();
    for (const extra of dividers) extra.remove();
    if (!start) {
      if (divider) divider.remove();
      return;
    }
    if (!divider) {
      divider = document.createElement("p");
      divider.className = "context-divider";
      divider.setAttribute("role", "note");
      divider.textContent = list.dataset.contextLabel;
    }
    if (divider.nextElementSibling !== start) start.before(divider);
  }
  document.addEventListener("htmx:wsAfterMessage", placeDivider);
  document.addEventListener("htmx:afterSwap", placeDivider);

  // Esc closes an open Edit form and puts the focus back on its toggle.
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape") return;
    const edit = event.target.closest && event.target.closest(".message__edit[open]");
    if (!edit) return;
    edit.open = false;
    edit.querySelector("summary").focus();
  });

  // On a phone the header is folded into a menu: its button opens and closes it,
  // Esc closes it and gives the focus back to the button.
  function menuToggle() {
    return document.querySelector(".room-menu__toggle");
  }
  function menuSet(open) {
    const toggle = menuToggle();
    if (!toggle) return;
    toggle.setAttribute("aria-expanded", String(open));
    toggle.closest(".room-header").classList.toggle("room-header--open", open);
  }
  document.addEventListener("click", (event) => {
    const toggle = event.target.closest && event.target.closest(".room-menu__toggle");
    if (toggle) menuSet(toggle.getAttribute("aria-expanded") !== "true");
  });
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape") return;
    const toggle = menuToggle();
    if (!toggle || toggle.getAttribute("aria-expanded") !== "true") return;
    if (!event.target.closest || !event.target.closest(".room-header")) return;
    menuSet(false);
    toggle.focus();
  });

  // The server closed the socket for good (chat.js sets the state): the room is
  // gone (4404) or this user was removed (4403). Say so, offer the way back, and
  // turn off what would only fail now: export, leave, edit and send.
  function roomLost(state) {
    const notice = document.getElementById("room-gone");
    if (!notice || !notice.hidden) return;
    const text = notice.querySelector(".room-gone__text");
    text.textContent = text.dataset[state] || text.dataset.gone;
    notice.hidden = false;
    for (const link of document.querySelectorAll(".room-header .room-link")) {
      link.removeAttribute("href");
      link.removeAttribute("download");
      link.setAttribute("aria-disabled", "true");
    }
    for (const control of document.querySelectorAll("#composer :is(textarea, button), #messages form button")) {
      control.disabled = true;
    }
    menuSet(false);
  }
  function watchConnection() {
    const state = document.getElementById("connection-state");
    if (!state) return;
    new MutationObserver(() => {
      if (state.dataset.state === "gone" || state.dataset.state === "removed") roomLost(state.dataset.state);
    }).observe(state, { attributes: true, attributeFilter: ["data-state"] });
  }

  document.addEventListener("DOMContentLoaded", () => {
    showEdit();
    watchConnection();
    // chat.js scrolled to the newest message; a search result wants its own.
    const found = document.querySelector("#messages .message--found");
    if (found) found.scrollIntoView({ block: "center" });
  });
})();
