// Mentions. Typing "@" in the composer offers the room's people (#composer's
// data-members) in a listbox the text field controls (aria-autocomplete="list",
// the highlighted option its aria-activedescendant; a textarea may not take the
// combobox role, nor aria-expanded): arrows move, Enter or Tab picks, Escape
// closes, a click picks. Messages mark every mention alike for every reader
// (chat/mentions.py); the reader's own are highlighted by a style rule made here
// for their name, so no message's HTML depends on who reads it.
(function () {
  "use strict";

  // "@" at the start or after a space, then what is typed of the name, up to the caret.
  const TYPED = /(?:^|\s)@([\w.+-]*)$/u;
  const MAX_SHOWN = 8;
  let options = []; // names shown now
  let active = -1; // the highlighted one
  let start = -1; // where the "@" is in the text

  const field = () => document.querySelector("#composer textarea");
  const list = () => document.getElementById("mention-options");

  function members() {
    const composer = document.getElementById("composer");
    return (composer?.dataset.members || "").split(" ").filter(Boolean);
  }

  function close() {
    const textarea = field();
    const listbox = list();
    options = [];
    active = -1;
    if (!textarea || !listbox) return;
    listbox.hidden = true;
    listbox.replaceChildren();
    textarea.removeAttribute("aria-activedescendant");
  }

  function highlight(index) {
    const textarea = field();
    active = index;
    [...list().children].forEach((item, i) => item.setAttribute("aria-selected", String(i === index)));
    const item = list().children[index];
    if (item) {
      textarea.setAttribute("aria-activedescendant", item.id);
      item.scrollIntoView({ block: "nearest" });
    }
  }

  function offer() {
    const textarea = field();
    if (!textarea) return;
    const before = textarea.value.slice(0, textarea.selectionStart);
    const typed = TYPED.exec(before);
    if (!typed || textarea.selectionStart !== textarea.selectionEnd) {
      close();
      return;
    }
    const prefix = typed[1].toLowerCase();
    const found = members().filter((name) => name.toLowerCase().startsWith(prefix)).slice(0, MAX_SHOWN);
    if (!found.length) {
      close();
      return;
    }
    start = before.length - typed[1].length - 1;
    options = found;
    const listbox = list();
    listbox.replaceChildren(
      ...found.map((name, i) => {
        const item = document.createElement("li");
        item.id = `mention-option-${i}`;
        item.setAttribute("role", "option");
        item.dataset.name = name;
        item.textContent = `@${name}`;
        return item;
      })
    );
    listbox.hidden = false;
    highlight(Math.min(Math.max(active, 0), found.length - 1));
  }

  function pick(index) {
    const textarea = field();
    const name = options[index];
    if (!textarea || name === undefined) return;
    const end = textarea.selectionStart;
    const inserted = `@${name} `;
    textarea.value = textarea.value.slice(0, start) + inserted + textarea.value.slice(end);
    const caret = start + inserted.length;
    textarea.setSelectionRange(caret, caret);
    close();
    textarea.focus();
    textarea.dispatchEvent(new Event("input", { bubbles: true }));
  }

  // Before composer.js, which sends on Enter: while the list is open, Enter picks.
  document.addEventListener(
    "keydown",
    (event) => {
      if (event.target !== field() || !options.length || event.isComposing) return;
      const moves = { ArrowDown: 1, ArrowUp: -1 };
      if (event.key in moves) {
        highlight((active + moves[event.key] + options.length) % options.length);
      } else if ((event.key === "Enter" && !event.shiftKey) || event.key === "Tab") {
        pick(active);
      } else if (event.key === "Escape") {
        close();
      } else {
        return;
      }
      event.preventDefault();
      event.stopPropagation();
    },
    true
  );

  document.addEventListener("input", (event) => {
    if (event.target === field()) offer();
  });
  document.addEventListener("click", (event) => {
    const item = event.target.closest?.("#mention-options [role=option]");
    if (item) pick(options.indexOf(item.dataset.name));
    else if (event.target !== field()) close();
  });
  // A click on an option must not blur the field first.
  document.addEventListener("mousedown", (event) => {
    if (event.target.closest?.("#mention-options")) event.preventDefault();
  });
  document.addEventListener("focusout", (event) => {
    if (event.target === field()) close();
  });

  function highlightOwn() {
    const room = document.querySelector(".room[data-me]");
    if (!room || !room.dataset.me) return;
    const sheet = new CSSStyleSheet();
    sheet.replaceSync(
      `.mention[data-mention="${CSS.escape(room.dataset.me)}"] { color: var(--warning-text); ` +
        "background: var(--warning-bg); border-radius: 4px; padding: 0 .2rem; }"
    );
    document.adoptedStyleSheets = [...document.adoptedStyleSheets, sheet];
  }

  document.addEventListener("DOMContentLoaded", () => {
    highlightOwn();
    const textarea = field();
    const listbox = list();
    if (!textarea || !listbox || !members().length) return;
    textarea.setAttribute("aria-autocomplete", "list");
    textarea.setAttribute("aria-controls", listbox.id);
  });
})();
