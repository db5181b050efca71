// htmx and its ws extension are separate files, run in order. When htmx failed
// to load (the network dropped, or the server restarted, while the page loaded)
// the extension would throw "htmx is not defined": it registers with this
// stand-in instead. The page then has no live updates and says so (chat.js).
(function () {
  "use strict";
  if (!window.htmx) window.htmx = { missing: true, config: {}, defineExtension() {} };
})();
