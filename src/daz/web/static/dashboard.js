// Draws the dashboard charts from /c/<channel>/data.json. No inline script: the page's CSP
// only allows scripts from /static, so nothing in chat text can ever run.
(function () {
  "use strict";
  const channel = document.body.dataset.channel;
  if (!channel || typeof Chart === "undefined") { return; }
  function draw(canvasId, rows) {
    const canvas = document.getElementById(canvasId);
    if (!canvas) { return; }
    new Chart(canvas, {
      type: "bar",
      data: {
        labels: rows.map(r => r.t),
        datasets: [
          { label: "messages", data: rows.map(r => r.messages), backgroundColor: "#4e79a7",
            yAxisID: "y" },
          { label: "active users", data: rows.map(r => r.users), type: "line",
            borderColor: "#f28e2b", backgroundColor: "#f28e2b", stepped: true,
            pointRadius: ctx => (ctx.raw > 0 ? 3 : 0), yAxisID: "users" },
        ],
      },
      options: {
        animation: false, responsive: true, maintainAspectRatio: false,
        interaction: { mode: "index", intersect: false },
        scales: {
          x: { ticks: { maxTicksLimit: 14, autoSkip: true } },
          y: { beginAtZero: true, title: { display: true, text: "messages" } },
          users: { beginAtZero: true, position: "right", grid: { drawOnChartArea: false },
                   ticks: { precision: 0 }, title: { display: true, text: "active users" } },
        },
      },
    });
    // Read by the browser test: what the chart was given.
    canvas.dataset.points = String(rows.length);
    canvas.dataset.messages = String(rows.reduce((sum, r) => sum + r.messages, 0));
  }
  fetch("/c/" + encodeURIComponent(channel) + "/data.json", { credentials: "same-origin" })
    .then(r => { if (!r.ok) { throw new Error(String(r.status)); } return r.json(); })
    .then(data => { draw("hourly-chart", data.hourly); draw("daily-chart", data.daily);
                    document.body.dataset.chartsReady = "1"; })
    .catch(() => { document.body.dataset.chartsReady = "error"; });
})();
