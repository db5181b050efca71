// While the room's tab is hidden: the title counts the messages that arrived
// ("(3) Room · Live Chat"), and, once the person turned notifications on with
// #notify-toggle (the browser asks only then, never on page load), the browser
// notifies them when someone mentions them and when the AI's answer to their
// question ends. Nothing is notified for their own messages, nor while the
// room is visible. Everything happens in this page: nothing leaves the machine.
(function () {
  "use strict";

  const STORED = "chat-notifications"; // "on" once the person turned them on here
  const FINAL = ["complete"];
  const statuses = new Map(); // message pk -> the status this page last saw
  let newest = 0; // the newest message pk seen: older ones (Show earlier) are not news
  let unread = 0;
  let title = "";

  const room = () => document.querySelector(".room[data-me]");
  const toggle = () => document.getElementById("notify-toggle");
  const hidden = () => document.visibilityState !== "visible";
  const supported = () => "Notification" in window;

  function state() {
    if (!supported()) return "off";
    if (Notification.permission === "denied") return "blocked";
    return Notification.permission === "granted" && localStorage.getItem(STORED) === "on" ? "on" : "off";
  }

  function showState() {
    const button = toggle();
    if (!button || !supported()) return;
    const now = state();
    button.hidden = false;
    button.textContent = button.dataset[now];
    button.dataset.state = now;
    button.setAttribute("aria-pressed", String(now === "on"));
  }

  async function flip() {
    if (state() === "on") {
      localStorage.removeItem(STORED);
    } else if (state() === "off") {
      localStorage.setItem(STORED, "on");
      if (Notification.permission !== "granted") await Notification.requestPermission();
    }
    showState();
  }

  function notify(text, article) {
    if (state() !== "on" || !hidden()) return;
    const body = article.querySelector(".message__body")?.textContent.trim().slice(0, 160) || "";
    const shown = new Notification(text, { body, tag: article.id });
    shown.onclick = () => {
      window.focus();
      shown.close();
    };
  }

  function words(key) {
    const name = document.querySelector("#room-title h1")?.textContent.trim() || "";
    return (toggle()?.dataset[key] || "").replace("{room}", name);
  }

  function showTitle() {
    document.title = unread ? `(${unread}) ${title}` : title;
  }

  // What arrived or changed since the last look: each new message, each reply that ended.
  function look() {
    const me = room();
    if (!me) return;
    for (const article of document.querySelectorAll("#messages article[data-pk]")) {
      const pk = Number(article.dataset.pk);
      const status = article.dataset.status;
      const before = statuses.get(pk);
      statuses.set(pk, status);
      const mine = article.dataset.author === me.dataset.user;
      if (before === undefined && pk > newest) {
        newest = pk;
        if (mine || !hidden()) continue;
        unread += 1;
        showTitle();
        const named = article.querySelector(`.mention[data-mention="${CSS.escape(me.dataset.me)}"]`);
        if (named) {
          const author = article.querySelector(".message__author")?.textContent || "";
          notify(words("mention").replace("{name}", author), article);
        }
      }
      const ended = before !== undefined && before !== status && FINAL.includes(status);
      if (ended && article.classList.contains("message--assistant")) {
        let question = article.previousElementSibling;
        while (question && !question.matches("article.message--user")) question = question.previousElementSibling;
        if (question && question.dataset.author === me.dataset.user) notify(words("answered"), article);
      }
    }
  }

  document.addEventListener("htmx:wsAfterMessage", look);
  document.addEventListener("visibilitychange", () => {
    if (hidden()) return;
    unread = 0;
    showTitle();
  });
  document.addEventListener("click", (event) => {
    if (event.target === toggle()) flip();
  });

  document.addEventListener("DOMContentLoaded", () => {
    if (!room()) return;
    title = document.title;
    for (const article of document.querySelectorAll("#messages article[data-pk]")) {
      const pk = Number(article.dataset.pk);
      statuses.set(pk, article.dataset.status);
      newest = Math.max(newest, pk);
    }
    showState();
  });
})();
