// The messaging account form shows the credentials of the chosen provider only. Every field is in
// the page, each saying which providers use it, so without this script the form still works.
(function () {
  "use strict";

  function sync() {
    var select = document.getElementById("id_provider");
    if (!select) {
      return;
    }
    var chosen = select.value;
    document.querySelectorAll("[data-providers]").forEach(function (input) {
      var row = input.closest(".form-row");
      if (row) {
        var used = input.getAttribute("data-providers").split(" ").indexOf(chosen) !== -1;
        row.hidden = chosen !== "" && !used;
      }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var select = document.getElementById("id_provider");
    if (select) {
      select.addEventListener("change", sync);
    }
    sync();
  });
})();
