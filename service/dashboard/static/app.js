// The fitq dashboard: plain JavaScript over the public HTTP API, no dependencies, works offline.
// Where the API wants a key, the page asks for one and keeps it in sessionStorage (this tab only).
"use strict";

const KEY = "fitq_api_key";
const FINISHED = new Set(["succeeded", "failed", "cancelled"]);
let selected = null; // the job shown on the right
let timer = null;

function headers() {
  const key = sessionStorage.getItem(KEY);
  return key ? { Authorization: `Bearer ${key}` } : {};
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: { ...headers(), ...(options.headers || {}) } });
  if (response.status === 401) {
    showKeyForm("The key was refused; enter another.");
    throw new Error("unauthorized");
  }
  const body = response.status === 204 ? null : await response.json();
  if (!response.ok) throw new Error(body?.error?.message || response.statusText);
  return body;
}

function showKeyForm(message) {
  document.getElementById("main").hidden = true;
  document.getElementById("key-form").hidden = false;
  document.getElementById("key-error").textContent = sessionStorage.getItem(KEY) ? message : "";
}

function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

async function refreshLists() {
  const jobs = await api("/v1/jobs?limit=50");
  document.getElementById("key-form").hidden = true;
  document.getElementById("main").hidden = false;
  const body = document.querySelector("#jobs tbody");
  body.replaceChildren();
  for (const job of jobs.data) {
    const row = body.insertRow();
    row.dataset.id = job.id;
    row.className = job.id === selected ? "selected" : "";
    cell(row, job.id);
    cell(row, job.status, `status-${job.status}`);
    cell(row, `${job.progress.epoch}/${job.progress.epochs}`);
    cell(row, job.created_at.slice(0, 19).replace("T", " "));
    row.addEventListener("click", () => { location.hash = `#job/${job.id}`; });
  }
  const datasets = await api("/v1/datasets?limit=50");
  const dbody = document.querySelector("#datasets tbody");
  dbody.replaceChildren();
  for (const dataset of datasets.data) {
    const row = dbody.insertRow();
    cell(row, dataset.id);
    cell(row, dataset.status, `status-${dataset.status}`);
    cell(row, dataset.filename || dataset.source);
    cell(row, dataset.rows ?? "");
  }
}

// One chart per metric: the training series and, where the job validated, its val_ twin.
function charts(history) {
  const container = document.getElementById("charts");
  container.replaceChildren();
  if (!history.length) return;
  const names = Object.keys(history[0]).filter((k) => k !== "epoch" && !k.startsWith("val_"));
  for (const name of names) {
    const series = [["train", name], ["validation", `val_${name}`]].filter(([, key]) => key in history[0]);
    container.appendChild(chart(name, series, history));
  }
}

function chart(name, series, history) {
  const width = 360, height = 200, pad = 32;
  const values = series.flatMap(([, key]) => history.map((e) => e[key])).filter((v) => v !== null);
  const low = Math.min(...values), high = Math.max(...values);
  const span = high - low || 1;
  const x = (i) => pad + (history.length > 1 ? (i * (width - 2 * pad)) / (history.length - 1) : 0);
  const y = (v) => height - pad - ((v - low) * (height - 2 * pad)) / span;
  const ns = "http://www.w3.org/2000/svg";
  const wrap = document.createElement("div");
  wrap.className = "chart";
  const title = document.createElement("div");
  title.className = "legend";
  title.innerHTML = `<strong></strong> ${series.map(([kind, key]) => `<span class="swatch-${kind}">— ${key}</span>`).join("")}`;
  title.querySelector("strong").textContent = name;
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  svg.dataset.metric = name;
  for (const [kind, key] of series) {
    const line = document.createElementNS(ns, "polyline");
    const points = history.map((e, i) => (e[key] === null ? null : `${x(i).toFixed(1)},${y(e[key]).toFixed(1)}`));
    line.setAttribute("points", points.filter(Boolean).join(" "));
    line.setAttribute("fill", "none");
    line.setAttribute("stroke-width", "2");
    line.setAttribute("class", kind);
    line.dataset.name = key;
    svg.appendChild(line);
  }
  for (const [value, ypos] of [[high, pad], [low, height - pad]]) {
    const label = document.createElementNS(ns, "text");
    label.setAttribute("x", 2);
    label.setAttribute("y", ypos);
    label.setAttribute("font-size", "10");
    label.textContent = value.toPrecision(3);
    svg.appendChild(label);
  }
  wrap.append(title, svg);
  return wrap;
}

function table(selector, rows) {
  const body = document.querySelector(`${selector} tbody`);
  body.replaceChildren();
  for (const values of rows) {
    const row = body.insertRow();
    for (const value of values) cell(row, value);
  }
}

async function showJob(id) {
  selected = id;
  const job = await api(`/v1/jobs/${encodeURIComponent(id)}`);
  document.getElementById("job").hidden = false;
  document.getElementById("job-title").textContent = job.id;
  const status = document.getElementById("job-status");
  status.textContent = job.status;
  status.className = `status-${job.status}`;
  const eta = job.progress.eta_seconds ? `, about ${Math.round(job.progress.eta_seconds)} s left` : "";
  document.getElementById("job-progress").textContent = `epoch ${job.progress.epoch}/${job.progress.epochs}${eta}`;
  document.getElementById("job-error").textContent = job.error ? `${job.error.type}: ${job.error.message}` : "";
  const cancel = document.getElementById("cancel");
  cancel.hidden = FINISHED.has(job.status) || job.cancel_requested;
  charts(job.history);
  const result = job.result;
  table("#test-results", result ? [
    ...(result.test_loss !== null ? [["test loss", result.test_loss.toPrecision(6)]] : []),
    ...Object.entries(result.test_metrics).map(([k, v]) => [`test ${k}`, v === null ? "n/a" : v.toPrecision(6)]),
    ["train seconds", result.train_seconds.toFixed(2)],
  ] : []);
  table("#summary", result ? summaryRows(result.model_summary) : []);
  return job;
}

function shapeText(shape) {
  return `(${shape.map((d) => (d === null ? "None" : d)).join(", ")})`;
}

// The model as Keras's summary shows it; a graph's inputs first, each layer with the
// tensors it is called on, its outputs marked.
function summaryRows(summary) {
  const outputs = new Set(Object.keys(summary.outputs || {}));
  const inputs = Object.entries(summary.inputs || {}).map(([name, shape]) => ["InputLayer", name, "", shapeText(shape), 0]);
  const layers = summary.layers.map((l) => [
    l.type,
    (l.name || "") + (outputs.has(l.name) ? " → output" : ""),
    (l.inputs || []).join(", "),
    shapeText(l.output_shape),
    l.params,
  ]);
  return [...inputs, ...layers];
}

async function tick() {
  try {
    await refreshLists();
    const match = location.hash.match(/^#job\/(.+)$/);
    if (match) await showJob(decodeURIComponent(match[1]));
  } catch (error) {
    if (error.message !== "unauthorized") console.error(error);
  }
}

document.getElementById("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(KEY, document.getElementById("key").value.trim());
  tick();
});
document.getElementById("cancel").addEventListener("click", async () => {
  await api(`/v1/jobs/${encodeURIComponent(selected)}/cancel`, { method: "POST" });
  tick();
});
window.addEventListener("hashchange", tick);
tick();
timer = setInterval(tick, 1000);
