/* The report page's charts, drawn by Chart.js (vendored: vendor/chart-4.4.7.umd.js, MIT) from
   the figures the page carries as JSON. The same figures stay on the page as rows under each
   chart, for screen readers and for browsers without scripts. */
(function () {
  "use strict";
  var source = document.getElementById("cc-report-charts");
  if (!source || typeof Chart === "undefined") { return; }
  var palette = ["#417690", "#79aec8", "#e06c00", "#2e7d32", "#6a1b9a", "#ba2121", "#777777"];
  JSON.parse(source.textContent).forEach(function (spec, index) {
    var canvas = document.getElementById("cc-chart-" + index);
    if (!canvas) { return; }
    new Chart(canvas, {
      type: "bar",
      data: {
        labels: spec.labels,
        datasets: spec.datasets.map(function (set, n) {
          return { label: set.label, data: set.data, backgroundColor: palette[n % palette.length] };
        })
      },
      options: {
        indexAxis: spec.horizontal ? "y" : "x",
        maintainAspectRatio: false,
        animation: false,
        plugins: { legend: { display: spec.datasets.length > 1 } },
        scales: { x: { stacked: !!spec.stacked, beginAtZero: true }, y: { stacked: !!spec.stacked, beginAtZero: true } }
      }
    });
  });
})();
