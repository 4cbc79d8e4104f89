/* regctl web UI: small enhancements only; every page works without this file.
   - "Copy" buttons next to the commands (shown only when JavaScript runs);
   - the models filter narrows the table as you type (the form still filters on the server). */
(function () {
  "use strict";
  document.querySelectorAll("button.copy[data-copy]").forEach(function (button) {
    var field = document.getElementById(button.getAttribute("data-copy"));
    if (!field) { return; }
    button.hidden = false;
    button.addEventListener("click", function () {
      field.select();
      var done = function () { button.textContent = "Copied"; setTimeout(function () { button.textContent = "Copy"; }, 1500); };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(field.value).then(done, function () { document.execCommand("copy"); done(); });
      } else {
        document.execCommand("copy");
        done();
      }
    });
  });
  var filter = document.querySelector("input[data-filter-rows]");
  if (filter) {
    var table = document.getElementById(filter.getAttribute("data-filter-rows"));
    var status = document.getElementById("models-count");
    if (table) {
      var rows = Array.prototype.slice.call(table.tBodies[0].rows);
      filter.addEventListener("input", function () {
        var words = filter.value.toLowerCase().split(/\s+/).filter(Boolean);
        var shown = 0;
        rows.forEach(function (row) {
          var name = row.getAttribute("data-name") || "";
          var ok = words.every(function (w) { return name.indexOf(w) !== -1; });
          row.hidden = !ok;
          if (ok) { shown += 1; }
        });
        if (status) { status.textContent = shown + " of " + rows.length + " models shown."; }
      });
    }
  }
})();
