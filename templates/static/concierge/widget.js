/* Concierge chat widget. The live chat (websocket, resume, citations) arrives with the
   dialog-agent work; until then the script only announces itself. */
(function () {
  "use strict";
  var script = document.currentScript;
  var key = script && script.getAttribute("data-widget-key");
  if (!key) { return; }
  window.Concierge = { widgetKey: key };
})();
