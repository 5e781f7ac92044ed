// SCO Settle dashboard: draw the charts from their JSON, and refresh the view live.
//
// The server sends a "change" event (server-sent events, /dashboard/events) when something this
// session may see was recorded; the page then fetches itself again and swaps its #live part,
// keeping the keyboard focus where it was. No file is loaded from outside the server.
"use strict";
(function () {
  var CHART_CONFIG = { responsive: true, displayModeBar: false, displaylogo: false };

  function drawCharts(root) {
    if (typeof window.Plotly === "undefined") {
      return;
    }
    root.querySelectorAll("[data-chart]").forEach(function (element) {
      var source = document.getElementById(element.getAttribute("data-chart"));
      if (source === null) {
        return;
      }
      var figure = JSON.parse(source.textContent);
      window.Plotly.newPlot(element, figure.data, figure.layout, CHART_CONFIG);
    });
  }

  function focusedHref(live) {
    var active = document.activeElement;
    if (active && live.contains(active) && active.getAttribute("href")) {
      return active.getAttribute("href");
    }
    return null;
  }

  var busy = false;
  var again = false;

  function refresh() {
    if (busy) {
      again = true;
      return;
    }
    busy = true;
    fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) {
        if (!response.ok || response.redirected) {
          window.location.reload(); // Signed out or expired: show the sign-in page.
          return null;
        }
        return response.text();
      })
      .then(function (text) {
        if (text === null) {
          return;
        }
        var fresh = new DOMParser().parseFromString(text, "text/html").getElementById("live");
        var live = document.getElementById("live");
        if (fresh === null || live === null) {
          return;
        }
        var href = focusedHref(live);
        if (window.Plotly) {
          live.querySelectorAll("[data-chart]").forEach(function (element) {
            window.Plotly.purge(element);
          });
        }
        var adopted = document.importNode(fresh, true);
        live.replaceWith(adopted);
        drawCharts(adopted);
        if (href !== null) {
          var same = Array.prototype.find.call(adopted.querySelectorAll("[href]"), function (e) {
            return e.getAttribute("href") === href;
          });
          if (same) {
            same.focus();
          }
        }
        var status = document.getElementById("live-status");
        if (status) {
          status.textContent = "Updated " + new Date().toLocaleTimeString();
        }
      })
      .catch(function () {})
      .finally(function () {
        busy = false;
        if (again) {
          again = false;
          refresh();
        }
      });
  }

  // A change event is followed by a look 0.2 s later: a burst of events costs one fetch, and
  // what the writer records right after a batch (a netting cycle's own row) is there by then.
  var REFRESH_DELAY_MS = 200;
  var scheduled = null;

  function refreshSoon() {
    if (scheduled === null) {
      scheduled = window.setTimeout(function () {
        scheduled = null;
        refresh();
      }, REFRESH_DELAY_MS);
    }
  }

  function listen(url) {
    var source = new EventSource(url);
    var opened = false;
    source.addEventListener("open", function () {
      // A reconnection may have missed an event: look again.
      if (opened) {
        refreshSoon();
      }
      opened = true;
      document.body.setAttribute("data-live", "open");
    });
    source.addEventListener("change", refreshSoon);
    source.addEventListener("error", function () {
      document.body.setAttribute("data-live", "reconnecting");
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    drawCharts(document);
    var url = document.body.getAttribute("data-live-url");
    if (url) {
      listen(url);
    }
  });
})();
