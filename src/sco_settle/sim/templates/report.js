/* Draws each chart of the report page from the JSON beside it. Without plotly.js the tables
   still carry every number. */
(function () {
  "use strict";
  if (typeof window.Plotly === "undefined") {
    return;
  }
  var config = { responsive: true, displayModeBar: false, displaylogo: false };
  var boxes = document.querySelectorAll("[data-chart]");
  for (var i = 0; i < boxes.length; i++) {
    var source = document.getElementById(boxes[i].getAttribute("data-chart"));
    var figure = JSON.parse(source.textContent);
    window.Plotly.newPlot(boxes[i], figure.data, figure.layout, config);
  }
})();
