// The dashboard's moving parts: the activity chart (24 h / 7 d / 90 d / all, from
// /c/<channel>/data.json) and the live view (who is here, now playing, the message counter),
// updated from the server-sent events of /c/<channel>/live without a reload.
// No inline script and no innerHTML: the page's CSP only allows scripts from /static, and
// every name and title from the room is set as text, so nothing in it can ever run.
(function () {
  "use strict";
  const channel = document.body.dataset.channel;
  if (!channel) { return; }
  const base = "/c/" + encodeURIComponent(channel);

  // ------------------------------------------------------------------ chart
  let chart = null;

  function draw(data) {
    const canvas = document.getElementById("activity-chart");
    if (!canvas || typeof Chart === "undefined") { return; }
    const rows = data.points;
    if (chart) { chart.destroy(); }
    chart = new Chart(canvas, {
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
          y: { beginAtZero: true, title: { display: true, text: "messages per " + data.unit } },
          users: { beginAtZero: true, position: "right", grid: { drawOnChartArea: false },
                   ticks: { precision: 0 }, title: { display: true, text: "active users" } },
        },
      },
    });
    // Read by the browser test: what the chart was given.
    canvas.dataset.range = data.range;
    canvas.dataset.points = String(rows.length);
    canvas.dataset.messages = String(rows.reduce((sum, r) => sum + r.messages, 0));
    for (const button of document.querySelectorAll("#chart-ranges button")) {
      button.setAttribute("aria-pressed", String(button.dataset.range === data.range));
    }
  }

  function load(range) {
    document.body.dataset.chartsReady = "";
    fetch(base + "/data.json?range=" + encodeURIComponent(range), { credentials: "same-origin" })
      .then(r => { if (!r.ok) { throw new Error(String(r.status)); } return r.json(); })
      .then(data => { draw(data); document.body.dataset.chartsReady = "1"; })
      .catch(() => { document.body.dataset.chartsReady = "error"; });
  }

  for (const button of document.querySelectorAll("#chart-ranges button")) {
    button.addEventListener("click", () => load(button.dataset.range));
  }
  load("auto");

  // ------------------------------------------------------------------ live view
  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined) { node.textContent = text; }
    if (className) { node.className = className; }
    return node;
  }

  function showUsers(users) {
    const body = document.querySelector("#users tbody");
    if (!body) { return; }
    const rows = users.map(user => {
      const row = el("tr");
      const name = el("td", undefined, "name");
      const link = el("a", user.name);
      link.href = base + "/u/" + encodeURIComponent(user.name);
      name.appendChild(link);
      if (user.self) {
        name.appendChild(document.createTextNode(" "));
        name.appendChild(el("small", "(this bot)"));
      }
      row.appendChild(name);
      row.appendChild(el("td", String(user.rank), "rank"));
      row.appendChild(el("td", (user.afk ? "AFK" : "") + (user.muted ? " muted" : ""), "status"));
      row.appendChild(el("td", user.since ? (user.before ? "before " : "") + user.since : "", "since"));
      return row;
    });
    body.replaceChildren(...rows);
    document.getElementById("user-count").textContent = String(users.length);
  }

  function duration(seconds) {
    if (seconds <= 0) { return "live"; }
    const h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
    const two = n => String(n).padStart(2, "0");
    return h ? h + ":" + two(m) + ":" + two(s) : m + ":" + two(s);
  }

  function showPlaying(playing) {
    const node = document.getElementById("now-playing");
    if (!node) { return; }
    if (!playing) { node.replaceChildren(document.createTextNode("nothing")); return; }
    node.replaceChildren(
      el("span", playing.title, "title"), document.createTextNode(" "),
      el("small", "(" + playing.type + ", " + duration(playing.seconds)
                  + (playing.paused ? ", paused" : "") + ")", "detail"));
  }

  if (typeof EventSource === "undefined") { return; }
  const status = document.getElementById("live-status");
  const source = new EventSource(base + "/live");
  let updates = 0;
  source.addEventListener("room", message => {
    const room = JSON.parse(message.data);
    showUsers(room.users);
    showPlaying(room.now_playing);
    document.getElementById("messages-7d").textContent = String(room.messages_7d);
    updates += 1;
    document.body.dataset.liveUpdates = String(updates);
    if (status) { status.textContent = "live: updated " + new Date().toLocaleTimeString(); }
  });
  source.addEventListener("error", () => {
    if (status) { status.textContent = "live updates: reconnecting…"; }
  });
})();
