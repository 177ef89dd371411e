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
          { label: "messages", data: rows.map(r => r.messages), backgroundColor: "#4e79a7" },
          { label: "active users", data: rows.map(r => r.users), backgroundColor: "#f28e2b",
            type: "line", borderColor: "#f28e2b" },
        ],
      },
      options: { animation: false, responsive: true, scales: { y: { beginAtZero: true } } },
    });
    canvas.dataset.points = String(rows.length);
  }
  fetch("/c/" + encodeURIComponent(channel) + "/data.json", { credentials: "same-origin" })
    .then(r => r.json())
    .then(data => { draw("hourly-chart", data.hourly); draw("daily-chart", data.daily);
                    document.body.dataset.chartsReady = "1"; })
    .catch(() => { document.body.dataset.chartsReady = "error"; });
})();
