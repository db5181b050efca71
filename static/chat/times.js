// Times in the reader's own timezone and language. The server writes each as
// <time datetime="ISO 8601" data-local="time|datetime"> in its own timezone
// (DJANGO_TIME_ZONE); this rewrites the text with the browser's, and puts the
// full date in the title. Messages added later (websocket, htmx) are caught too.
(function () {
  "use strict";

  const lang = () => document.documentElement.lang || undefined;
  const formats = {
    time: { hour: "numeric", minute: "2-digit" },
    datetime: { dateStyle: "medium", timeStyle: "short" },
  };

  function localize(root) {
    if (!root.querySelectorAll) return;
    const found = [...root.querySelectorAll("time[data-local]")];
    if (root.matches && root.matches("time[data-local]")) found.push(root);
    for (const el of found) {
      const when = new Date(el.getAttribute("datetime"));
      if (Number.isNaN(when.getTime())) continue;
      const format = formats[el.dataset.local] || formats.datetime;
      el.textContent = new Intl.DateTimeFormat(lang(), format).format(when);
      el.title = new Intl.DateTimeFormat(lang(), { dateStyle: "full", timeStyle: "short" }).format(when);
      delete el.dataset.local; // done: a later pass leaves it alone
    }
  }

  new MutationObserver((changes) => {
    for (const change of changes) for (const node of change.addedNodes) localize(node);
  }).observe(document.documentElement, { childList: true, subtree: true });
  document.addEventListener("DOMContentLoaded", () => localize(document));
})();
