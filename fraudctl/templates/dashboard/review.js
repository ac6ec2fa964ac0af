// The review page: polls /api/reviews, shows one alert with its card's history, and sends
// an analyst's verdict. Values from the data are set as text, never as HTML.
"use strict";

const REFRESH_MS = parseFloat(document.body.dataset.refreshS) * 1000;
const TOKEN = document.querySelector('meta[name="fraudctl-token"]').content;
const PAGE = 200;
let chosen = null;

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function utc(value) {
  return new Date(value).toISOString().replace("T", " ").slice(0, 19);
}

function age(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 120) return `${Math.round(seconds)} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172800) return `${(seconds / 3600).toFixed(1)} h`;
  return `${(seconds / 86400).toFixed(1)} d`;
}

function money(value) {
  return Number(value).toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
}

function banner(message) {
  const node = document.getElementById("banner");
  node.hidden = !message;
  node.textContent = message || "";
  document.body.dataset.database = message ? "down" : "up";
}

function row(cells, numeric) {
  const tr = document.createElement("tr");
  cells.forEach((cell, i) => tr.appendChild(el("td", cell, numeric.includes(i) ? "num" : "")));
  return tr;
}

function why(alert) {
  // A rule that sent it here says more than the model's top reason for a low score.
  const rules = alert.rules.length ? `rules: ${alert.rules.join(", ")}` : "";
  const first = (alert.reasons[0] || {}).text;
  return [rules, first].filter(Boolean).join(" · ") || `score ${alert.score.toFixed(3)}`;
}

async function refreshQueue() {
  let response;
  try {
    response = await fetch(`/api/reviews?limit=${PAGE}`, { cache: "no-store" });
  } catch (exc) {
    banner("the dashboard is unreachable");
    return;
  }
  const data = await response.json();
  if (!response.ok) {
    banner(data.error || `HTTP ${response.status}`);
    return;
  }
  banner(null);
  const backlog = data.backlog;
  document.querySelector("#tile-open .value").textContent = backlog.open.toLocaleString("en-US");
  document.querySelector("#tile-oldest .value").textContent = age(backlog.oldest_age_s);
  document.querySelector("#tile-resolved .value").textContent = backlog.resolved_24h.toLocaleString("en-US");
  document.getElementById("queue-note").textContent = backlog.open > data.alerts.length
    ? `· oldest ${data.alerts.length} of ${backlog.open.toLocaleString("en-US")}` : "· oldest first";
  const body = document.querySelector("#table-queue tbody");
  const now = Date.now();
  const rows = data.alerts.map((alert) => {
    const tr = row([alert.txn_id, age((now - Date.parse(alert.opened_at)) / 1000),
                    alert.score.toFixed(3), money(alert.amount), alert.merchant_id, why(alert)],
                   [1, 2, 3]);
    tr.dataset.txn = alert.txn_id;
    if (alert.txn_id === chosen) tr.classList.add("chosen");
    tr.addEventListener("click", () => show(alert.txn_id));
    return tr;
  });
  body.replaceChildren(...rows);
  document.getElementById("queue").dataset.state = rows.length ? "ready" : "empty";
  document.getElementById("updated").textContent = `updated ${utc(now)} UTC`;
}

async function show(txnId) {
  chosen = txnId;
  document.querySelectorAll("#table-queue tbody tr").forEach((tr) => {
    tr.classList.toggle("chosen", tr.dataset.txn === txnId);
  });
  const card = document.getElementById("alert");
  card.dataset.state = "loading";
  const response = await fetch(`/api/reviews/${encodeURIComponent(txnId)}`, { cache: "no-store" });
  const alert = await response.json();
  if (!response.ok) {
    card.dataset.state = "empty";
    banner(alert.error || `HTTP ${response.status}`);
    return;
  }
  document.getElementById("alert-title").textContent = `Alert ${alert.txn_id}`;
  const facts = [
    ["when", `${utc(alert.ts)} UTC`], ["amount", money(alert.amount)],
    ["merchant", alert.merchant_id], ["card", alert.card_hash],
    ["score", `${alert.score.toFixed(4)} by ${alert.model || "?"}`],
    ["decided", alert.decision || "?"], ["rules hit", alert.rules.join(", ") || "none"],
    ["status", alert.verdict === "open" ? "open" : `${alert.verdict} (${alert.resolved_by || ""})`],
  ];
  const list = document.getElementById("alert-facts");
  list.replaceChildren(...facts.flatMap(([name, value]) => [el("dt", name), el("dd", value)]));
  const reasons = alert.reasons.map((reason) => el("li", reason.text));
  if (!reasons.length) reasons.push(el("li", "no reasons stored (a rule, or the rule-based scorer)"));
  document.getElementById("alert-reasons").replaceChildren(...reasons);
  document.querySelector("#table-card tbody").replaceChildren(...alert.card_history.map((tx) => row([
    utc(tx.ts), money(tx.amount), tx.merchant_id, tx.channel || "", tx.country || "",
    tx.score === null ? "–" : tx.score.toFixed(3), tx.decision || "–",
    tx.is_fraud === null ? "–" : `${tx.is_fraud ? "fraud" : "genuine"} (${tx.label_source})`,
  ], [1, 5])));
  const open = alert.verdict === "open";
  document.getElementById("resolve-fraud").disabled = !open;
  document.getElementById("resolve-genuine").disabled = !open;
  document.getElementById("resolve-result").textContent = open ? "" : `resolved as ${alert.verdict}`;
  card.dataset.state = "ready";
}

async function resolve(verdict) {
  if (!chosen) return;
  const result = document.getElementById("resolve-result");
  const note = document.getElementById("note").value.trim();
  const response = await fetch(`/api/reviews/${encodeURIComponent(chosen)}`, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-Fraudctl-Token": TOKEN },
    body: JSON.stringify({ verdict, note: note || null }),
  });
  const answer = await response.json();
  if (!response.ok) {
    result.textContent = answer.error || `HTTP ${response.status}`;
    return;
  }
  document.getElementById("note").value = "";
  await show(chosen);
  result.textContent = `resolved as ${answer.verdict}; labelled (source analyst)`;
  await refreshQueue();
}

let thresholdsChart = null;
let chartLibrary = null;

function loadChartLibrary() {
  // Loaded only when there is a curve to draw: the queue, what the page is for, does not
  // wait for Chart.js to be parsed.
  chartLibrary = chartLibrary || new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = "/static/chart.umd.min.js";
    script.onload = resolve;
    script.onerror = reject;
    document.head.appendChild(script);
  });
  return chartLibrary;
}

async function refreshThresholds() {
  const card = document.getElementById("thresholds");
  let data;
  try {
    const response = await fetch("/api/thresholds", { cache: "no-store" });
    data = await response.json();
    if (!response.ok) return;
  } catch (exc) {
    return;
  }
  const applied = data.applied;
  if (!applied || !applied.curve.length) {
    card.dataset.state = "empty";
    return;
  }
  const chosen = applied.chosen;
  const costs = applied.costs;
  document.getElementById("thresholds-note").textContent =
    `· ${data.version} · ${costs.capacity_per_day} reviews a day, a false alarm costs ` +
    `${costs.false_alarm} · chosen: review at ${chosen.review_at.toFixed(4)}` +
    (chosen.block_at === null ? ", block nothing" : `, block at ${chosen.block_at.toFixed(4)}`) +
    ` (${chosen.cost_per_day.toFixed(0)} a day against ${applied.approve_all.cost_per_day.toFixed(0)} approving everything)`;
  await loadChartLibrary();
  const points = applied.curve.filter((p) => p.review_at !== null);
  const config = {
    type: "line",
    data: { datasets: [
      { label: "cost a day", data: points.map((p) => ({ x: p.review_at, y: p.cost_per_day })),
        borderColor: "#58a6ff", pointRadius: 0, yAxisID: "cost" },
      { label: "reviews a day", data: points.map((p) => ({ x: p.review_at, y: p.reviews_per_day })),
        borderColor: "#d29922", pointRadius: 0, yAxisID: "reviews" },
      { label: "chosen", type: "scatter", data: [{ x: chosen.review_at, y: chosen.cost_per_day }],
        backgroundColor: "#3fb950", pointRadius: 6, yAxisID: "cost" },
    ] },
    options: {
      animation: false, maintainAspectRatio: false, parsing: false,
      scales: {
        x: { type: "linear", title: { display: true, text: "review threshold (score)" } },
        cost: { position: "left", title: { display: true, text: "cost a day" } },
        reviews: { position: "right", grid: { drawOnChartArea: false },
                   title: { display: true, text: "reviews a day" } },
      },
    },
  };
  if (thresholdsChart) {
    thresholdsChart.data = config.data;
    thresholdsChart.update("none");
  } else {
    thresholdsChart = new Chart(document.getElementById("chart-thresholds"), config);
  }
  card.dataset.state = "ready";
}

document.getElementById("resolve-fraud").addEventListener("click", () => resolve("fraud"));
document.getElementById("resolve-genuine").addEventListener("click", () => resolve("genuine"));
refreshQueue();
refreshThresholds();
setInterval(refreshQueue, REFRESH_MS);
setInterval(refreshThresholds, 60000);
