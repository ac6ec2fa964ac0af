// The fraudctl dashboard: polls /api/panels (every figure is a named SQL query's rows) and
// /api/model, and draws them. Values from the data are set as text, never as HTML.
"use strict";

const settings = document.body.dataset;
const REFRESH_MS = parseFloat(settings.refreshS) * 1000;
const MODEL_REFRESH_MS = 30000;
const WARN_AT = parseInt(settings.warnAt, 10);
const CRITICAL_AT = parseInt(settings.criticalAt, 10);

const GRID = "#2a3541";
const TEXT = "#e6edf3";
const PALETTE = ["#58a6ff", "#d2a8ff", "#3fb950", "#d29922", "#ff7b72", "#79c0ff"];
Chart.defaults.color = TEXT;
Chart.defaults.borderColor = GRID;
Chart.defaults.animation = false;       // a refresh redraws at once, it does not slide
Chart.defaults.maintainAspectRatio = false;

const charts = {};

// Times are shown in UTC, 24-hour, as the CLI prints them (the page says so in its header).
const TIME_ZONE = "UTC";
function clock(value, withSeconds = true) {
  return new Date(value).toLocaleTimeString("en-GB", {
    timeZone: TIME_ZONE, hour12: false, hour: "2-digit", minute: "2-digit",
    ...(withSeconds ? { second: "2-digit" } : {}),
  });
}

function chart(id, config) {
  // Create once, then swap the data in place on each refresh.
  if (!charts[id]) {
    charts[id] = new Chart(document.getElementById(id), config);
  } else {
    charts[id].data = config.data;
    charts[id].options = config.options;
    charts[id].update("none");
  }
}

let championShown = null;
let modelFetchedAt = 0;

function records(panel) {
  return panel.rows.map((row) => Object.fromEntries(panel.columns.map((c, i) => [c, row[i]])));
}

function setState(key, state) {
  document.querySelectorAll(`[data-panel="${key}"]`).forEach((el) => { el.dataset.state = state; });
}

function fmt(value, digits = 0) {
  if (value === null || value === undefined) return "–";
  if (typeof value === "number") {
    return value.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });
  }
  return String(value);
}

function fill(table, rows, columns) {
  // columns: [key, heading, kind] with kind "num", "score", "time" or "text"
  table.replaceChildren();
  const head = table.createTHead().insertRow();
  for (const [, heading, kind] of columns) {
    const th = document.createElement("th");
    th.textContent = heading;
    if (kind !== "text" && kind !== "time") th.className = "num";
    head.appendChild(th);
  }
  const body = table.createTBody();
  for (const record of rows) {
    const tr = body.insertRow();
    for (const [key, , kind] of columns) {
      const td = tr.insertCell();
      const value = record[key];
      if (kind === "time") td.textContent = value ? clock(value) : "–";
      else if (kind === "score") td.textContent = fmt(value, 4);
      else if (kind === "money") td.textContent = fmt(value, 2);
      else td.textContent = fmt(value);
      if (kind !== "text" && kind !== "time") td.className = "num";
      td.title = td.textContent;
    }
  }
}

// What the page counts as high-risk: the rows decided review or block (the deployment's
// review threshold, or the model's own, shown once the model panel has loaded), unless the
// dashboard was started with --threshold.
function highRiskMeaning() {
  if (settings.threshold) return `score ≥ ${settings.threshold}`;
  const policy = lastModel && lastModel.policy;
  if (policy && (policy.review_at !== null || policy.rules)) {
    const review = policy.review_at !== null ? `review at ${fmt(policy.review_at, 3)}` : "review at the model's threshold";
    const block = policy.block_at !== null ? `, block at ${fmt(policy.block_at, 3)}` : "";
    return `decided review or block · ${review}${block}${policy.rules ? " · rules" : ""}`;
  }
  const threshold = lastModel && !lastModel.error ? lastModel.threshold : undefined;
  return threshold === undefined || threshold === null
    ? "flagged by the scoring model"
    : `flagged by the model · threshold ${fmt(threshold, 3)}`;
}

function drawHighRisk(panel) {
  const [row] = records(panel);
  const tile = document.querySelector('.tile[data-panel="high_risk"]');
  const count = row ? row.high_risk : 0;
  tile.querySelector(".value").textContent = fmt(count);
  tile.querySelector(".note").textContent =
    `of ${fmt(row ? row.transactions : 0)} transactions · ${highRiskMeaning()}`;
  tile.classList.remove("ok", "warn", "critical");
  tile.classList.add(count >= CRITICAL_AT ? "critical" : count >= WARN_AT ? "warn" : "ok");
  tile.dataset.state = row && row.transactions > 0 ? "ready" : "empty";
}

function drawHealth(panel) {
  const [row] = records(panel);
  const values = {
    tx_per_s: fmt(row.tx_per_s, 1),
    queue_depth: fmt(row.queue_depth),
    dlq_depth: fmt(row.dlq_depth),
    lag_s: row.lag_s === null ? (row.queue_depth === 0 ? "0" : "–") : fmt(row.lag_s, 1),
    latency: row.latency_p50_ms === null ? "–" : `${fmt(row.latency_p50_ms)} / ${fmt(row.latency_p99_ms)}`,
    consumers_live: fmt(row.consumers_live),
  };
  for (const tile of document.querySelectorAll('.tile[data-panel="health"]')) {
    tile.querySelector(".value").textContent = values[tile.dataset.field];
    tile.dataset.state = "ready";
  }
  const sampled = document.querySelector('[data-field="queue_depth"] .note');
  sampled.textContent = row.sampled_s_ago === null ? "no consumer has sampled it yet"
    : row.sampled_s_ago > 30 ? `stale: sampled ${fmt(row.sampled_s_ago)} s ago` : "waiting";
  const consumers = document.querySelector('[data-field="consumers_live"]');
  consumers.classList.toggle("critical", row.consumers_live === 0);
  const dlq = document.querySelector('[data-field="dlq_depth"]');
  dlq.classList.toggle("warn", row.dlq_depth > 0);
}

function drawPerMinute(panel) {
  const rows = records(panel);
  const total = rows.reduce((sum, r) => sum + r.transactions, 0);
  const card = document.querySelector('[data-panel="per_minute"]');
  card.dataset.total = String(total);
  if (total === 0) { card.dataset.state = "empty"; return; }
  card.dataset.state = "ready";
  chart("chart-per-minute", {
    data: {
      labels: rows.map((r) => clock(r.minute, false)),
      datasets: [
        { type: "line", label: "high-risk", data: rows.map((r) => r.high_risk), yAxisID: "risk",
          borderColor: "#f85149", backgroundColor: "#f85149", pointRadius: 1.5, tension: 0.2 },
        { type: "bar", label: "transactions", data: rows.map((r) => r.transactions), yAxisID: "y",
          backgroundColor: "#58a6ff" },
      ],
    },
    options: {
      scales: {
        x: { ticks: { maxTicksLimit: 12 } },
        y: { beginAtZero: true, title: { display: true, text: "transactions" } },
        risk: { beginAtZero: true, position: "right", grid: { drawOnChartArea: false },
                title: { display: true, text: "high-risk" } },
      },
    },
  });
}

function drawDistribution(panel) {
  const rows = records(panel);
  const card = document.querySelector('[data-panel="distribution"]');
  const models = [...new Set(rows.map((r) => r.model))];
  card.dataset.models = String(models.length);
  if (rows.length === 0) { card.dataset.state = "empty"; return; }
  card.dataset.state = "ready";
  document.getElementById("distribution-note").textContent =
    models.length > 1 ? "· last hour, by model version" : `· last hour · ${models[0]}`;
  const buckets = Array.from({ length: 20 }, (_, i) => i / 20);
  chart("chart-distribution", {
    type: "bar",
    data: {
      labels: buckets.map((b) => b.toFixed(2)),
      datasets: models.map((model, i) => {
        const counts = new Map(rows.filter((r) => r.model === model).map((r) => [r.bucket, r.transactions]));
        return { label: model, data: buckets.map((b) => counts.get(b) || null),
                 backgroundColor: PALETTE[i % PALETTE.length] };
      }),
    },
    options: {
      plugins: { legend: { display: models.length > 1 } },
      scales: {
        x: { title: { display: true, text: "score (bucket's lower edge)" } },
        y: { type: "logarithmic", title: { display: true, text: "transactions" } },
      },
    },
  });
}

function drawTable(key, tableId, columns) {
  return (panel) => {
    const rows = records(panel);
    fill(document.getElementById(tableId), rows, columns);
    setState(key, rows.length ? "ready" : "empty");
  };
}

function drawDeployment(panel) {
  const rows = records(panel);
  const card = document.getElementById("model-card");
  card.replaceChildren();
  if (rows.length === 0) { setState("deployment", "empty"); return; }
  const list = document.createElement("dl");
  list.className = "kv";
  for (const r of rows) {
    addPair(list, r.role === "reported" ? "scoring" : r.role,
            `${r.version}` + (r.colour ? ` · ${r.colour}` : "") +
            (r.traffic_pct !== null ? ` · ${r.traffic_pct}%` : ""));
  }
  card.appendChild(list);
  const details = document.createElement("dl");
  details.className = "kv";
  details.id = "model-details";
  card.appendChild(details);
  const champion = (rows.find((r) => r.role === "champion" || r.role === "reported") || {}).version;
  if (champion !== championShown || Date.now() - modelFetchedAt > MODEL_REFRESH_MS) {
    championShown = champion;
    refreshModel();
  } else {
    drawModel(lastModel);
  }
  setState("deployment", "ready");
}

function addPair(list, key, value, badge) {
  const dt = document.createElement("dt");
  dt.textContent = key;
  const dd = document.createElement("dd");
  if (badge) {
    const span = document.createElement("span");
    span.className = `badge ${badge}`;
    span.textContent = value;
    dd.appendChild(span);
  } else {
    dd.textContent = value;
  }
  list.append(dt, dd);
}

let lastModel = null;

async function refreshModel() {
  modelFetchedAt = Date.now();
  try {
    const response = await fetch("/api/model", { cache: "no-store" });
    lastModel = await response.json();
  } catch (error) {
    lastModel = { error: `dashboard server unreachable: ${error.message}` };
  }
  drawModel(lastModel);
}

function drawModel(model) {
  const list = document.getElementById("model-details");
  if (!list || !model) return;
  list.replaceChildren();
  if (model.error) { addPair(list, "registry", model.error); return; }
  if (model.rule_based) { addPair(list, "kind", "rule-based (train one with fraudctl retrain)"); return; }
  if (!model.version) return;
  const m = model.metrics || {};
  addPair(list, "held-out AUC", fmt(m.roc_auc, 3));
  addPair(list, "average precision", fmt(m.average_precision, 3));
  addPair(list, "card precision@100", fmt(m.card_precision_at_100, 3));
  addPair(list, "threshold", fmt(model.threshold, 3));
  if (model.tested_on) {
    addPair(list, "tested on", model.tested_on);
  }
  const drift = model.drift;
  if (!drift) addPair(list, "drift", "computing…");
  else if (drift.status === "unknown") addPair(list, "drift", drift.reason);
  else if (drift.status === "drifted") addPair(list, "drift", `${drift.verdict} · ${fmt(drift.rows)} rows`, drift.status);
  else addPair(list, "drift", `${drift.status} · worst PSI ${fmt(drift.worst_psi, 3)} · ${fmt(drift.rows)} rows`, drift.status);
}

const DRAW = {
  high_risk: drawHighRisk,
  health: drawHealth,
  per_minute: drawPerMinute,
  distribution: drawDistribution,
  deployment: drawDeployment,
  models: drawTable("models", "table-models", [
    ["model", "model", "text"], ["transactions", "transactions", "num"],
    ["avg_score", "mean score", "score"], ["median_bucket", "median (0.01 bucket)", "score"],
    ["high_risk_share", "high-risk share", "score"]]),
  merchants: drawTable("merchants", "table-merchants", [
    ["merchant_id", "merchant", "text"], ["high_risk", "high-risk", "num"],
    ["max_score", "max score", "score"], ["last_at", "latest", "time"]]),
  latest: drawTable("latest", "table-latest", [
    ["ts", "time", "time"], ["txn_id", "transaction", "text"], ["merchant_id", "merchant", "text"],
    ["amount", "amount", "money"], ["score", "score", "score"], ["model", "model", "text"]]),
};

function banner(text) {
  const el = document.getElementById("banner");
  el.hidden = !text;
  el.textContent = text || "";
}

async function refresh() {
  try {
    const response = await fetch("/api/panels", { cache: "no-store" });
    const body = await response.json();
    if (!response.ok) {
      banner(`${body.error} — ${body.hint}`);
      Object.keys(DRAW).forEach((key) => setState(key, "error"));
      document.body.dataset.database = "down";
      return;
    }
    banner("");
    document.body.dataset.database = "up";
    for (const [key, draw] of Object.entries(DRAW)) {
      try {
        draw(body.panels[key]);
      } catch (error) {
        setState(key, "error");
        console.error(key, error);
      }
    }
    document.getElementById("updated").textContent =
      `updated ${clock(Date.now())} UTC · ${body.generated_ms} ms · every ${REFRESH_MS / 1000} s`;
  } catch (error) {
    banner(`dashboard server unreachable: ${error.message}`);
  } finally {
    setTimeout(refresh, REFRESH_MS);
  }
}

refresh();
