// Copy buttons: one on each finished message (in the template, with the message's
// source text beside it) and one on each code block (added here, labelled from
// #messages' data-copy-* attributes).
// Each says "Copied" for a moment, where screen readers hear it too.
(function () {
  "use strict";

  const CONFIRM_MS = 1500;

  function labels() {
    const list = document.getElementById("messages");
    return list ? list.dataset : {};
  }

  function addCodeButtons(root) {
    const { copyCode } = labels();
    if (!copyCode) return;
    const blocks = [...root.querySelectorAll(".message__body pre")];
    if (root.matches && root.matches(".message__body pre")) blocks.push(root);
    for (const pre of blocks) {
      if (pre.parentElement.classList.contains("code")) continue;
      // A wrapper, so the button sits above the code, not over it.
      const wrapper = document.createElement("div");
      wrapper.className = "code";
      pre.replaceWith(wrapper);
      wrapper.append(pre);
      const button = document.createElement("button");
      button.type = "button";
      button.className = "button button--quiet copy copy--code";
      button.dataset.copy = "code";
      button.textContent = copyCode;
      wrapper.prepend(button);
    }
  }

  function textFor(button) {
    if (button.dataset.copy === "code") {
      return button.parentElement.querySelector("pre").innerText.replace(/\n$/, "");
    }
    // The message as written (Markdown and all), not as rendered.
    return button.closest(".message").querySelector("template.message__source").content.textContent;
  }

  async function copy(button) {
    const { copied, copyFailed } = labels();
    let ok = true;
    try {
      await navigator.clipboard.writeText(textFor(button));
    } catch (error) {
      ok = false;
    }
    const status = document.createElement("span");
    status.className = ok ? "copy__status" : "copy__status copy__status--failed";
    status.setAttribute("role", "status");
    status.textContent = ok ? copied : copyFailed;
    // Beside the button, not in it, so the button keeps its name.
    const previous = button.nextElementSibling;
    if (previous && previous.classList.contains("copy__status")) previous.remove();
    button.after(status);
    button.classList.toggle("copy--done", ok);
    setTimeout(() => {
      status.remove();
      button.classList.remove("copy--done");
    }, CONFIRM_MS);
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-copy]");
    if (button) copy(button);
  });

  // Messages arrive as fragments over the socket and from "Show earlier"; chat.js
  // says what it put in (a message, or a streaming reply's finished block).
  document.addEventListener("htmx:load", (event) => addCodeButtons(event.detail.elt));
  document.addEventListener("chat:added", (event) => addCodeButtons(event.target));
  document.addEventListener("DOMContentLoaded", () => addCodeButtons(document));
})();
