/* Fernando Telemetry dashboard: draws the page's charts with plotly.js and refreshes the page's data
   (charts and server-rendered fragments) from its /ui/data/... endpoint while the page is open. */
(function () {
  "use strict";

  var PLOT_CONFIG = { responsive: true, displaylogo: false };
  var state = { refreshes: 0, lastRefreshAt: null, inFlight: false };

  function draw(element, figure) {
    if (!window.Plotly || !figure) {
      return;
    }
    window.Plotly.react(element, figure.data, figure.layout, PLOT_CONFIG);
  }

  function drawInitialCharts() {
    document.querySelectorAll("[data-chart]").forEach(function (element) {
      var text = element.getAttribute("data-figure");
      if (text) {
        draw(element, JSON.parse(text));
        element.removeAttribute("data-figure");
      }
    });
  }

  function openKeys(container) {
    var keys = [];
    container.querySelectorAll("details[open]").forEach(function (details) {
      var holder = details.closest("[data-key]");
      if (holder) {
        keys.push(holder.getAttribute("data-key"));
      }
    });
    return keys;
  }

  function replaceFragment(container, html) {
    if (container.contains(document.activeElement) && document.activeElement !== document.body) {
      return; // someone is typing in it: leave it for the next refresh
    }
    var reopen = openKeys(container);
    container.innerHTML = html;
    reopen.forEach(function (key) {
      var holder = container.querySelector('[data-key="' + CSS.escape(key) + '"]');
      var details = holder && holder.querySelector("details");
      if (details) {
        details.open = true;
      }
    });
  }

  function showError(message) {
    var banner = document.getElementById("refresh-error");
    if (!banner) {
      return;
    }
    banner.textContent = message || "";
    banner.hidden = !message;
  }

  function setStatus(text) {
    var status = document.getElementById("refresh-status");
    if (status) {
      status.textContent = text;
    }
  }

  function refresh() {
    var main = document.getElementById("main");
    var url = main && main.getAttribute("data-refresh-url");
    if (!url || state.inFlight) {
      return Promise.resolve(false);
    }
    state.inFlight = true;
    return fetch(url, { credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (response.status === 401) {
          window.location.assign("/ui/login?next=" + encodeURIComponent(window.location.pathname + window.location.search));
          return false;
        }
        return response.json().then(function (body) {
          if (!response.ok) {
            showError((body && body.error && body.error.message) || "The page could not be refreshed (" + response.status + ").");
            return false;
          }
          Object.keys(body.charts || {}).forEach(function (id) {
            var element = document.querySelector('[data-chart="' + CSS.escape(id) + '"]');
            if (element) {
              draw(element, body.charts[id]);
            }
          });
          Object.keys(body.fragments || {}).forEach(function (id) {
            var container = document.querySelector('[data-fragment="' + CSS.escape(id) + '"]');
            if (container) {
              replaceFragment(container, body.fragments[id]);
            }
          });
          state.refreshes += 1;
          state.lastRefreshAt = body.generated_at;
          showError("");
          setStatus("updated " + new Date().toLocaleTimeString());
          return true;
        });
      })
      .catch(function () {
        showError("The server could not be reached; the page will try again.");
        return false;
      })
      .finally(function () {
        state.inFlight = false;
      });
  }

  function start() {
    drawInitialCharts();
    var main = document.getElementById("main");
    var seconds = main && Number(main.getAttribute("data-refresh-interval"));
    if (main && main.getAttribute("data-refresh-url") && seconds > 0) {
      window.setInterval(function () {
        if (!document.hidden) {
          refresh();
        }
      }, seconds * 1000);
      document.addEventListener("visibilitychange", function () {
        if (!document.hidden) {
          refresh();
        }
      });
    }
  }

  window.fernandoDashboard = { refresh: refresh, state: state };
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
