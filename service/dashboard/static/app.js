// The fitq dashboard: plain JavaScript over the public HTTP API, no dependencies, works offline.
// Where the API wants a key, the page asks for one and keeps it in sessionStorage (this tab only).
"use strict";

const KEY = "fitq_api_key";
const FINISHED = new Set(["succeeded", "failed", "cancelled"]);
let selected = null; // the job shown on the right
let selectedSweep = null; // or the sweep
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
  const sweeps = await api("/v1/sweeps?limit=20");
  const sbody = document.querySelector("#sweeps tbody");
  sbody.replaceChildren();
  document.getElementById("sweeps-empty").hidden = sweeps.data.length > 0;
  for (const sweep of sweeps.data) {
    const row = sbody.insertRow();
    row.className = sweep.id === selectedSweep ? "selected" : "";
    cell(row, sweep.id);
    cell(row, sweep.status, `status-${sweep.status}`);
    cell(row, `${ended(sweep)}/${sweep.max_trials}`);
    cell(row, sweep.best ? num(sweep.best.value) : "");
    row.addEventListener("click", () => { location.hash = `#sweep/${sweep.id}`; });
  }
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
  // Uploaded datasets; those a job's inline arrays were stored as are listed under that job.
  const datasets = await api("/v1/datasets?limit=50");
  const dbody = document.querySelector("#datasets tbody");
  dbody.replaceChildren();
  const uploaded = datasets.data.filter((d) => d.source !== "inline");
  document.getElementById("datasets-empty").hidden = uploaded.length > 0;
  for (const dataset of uploaded) {
    const row = dbody.insertRow();
    cell(row, dataset.id);
    cell(row, dataset.status, `status-${dataset.status}`);
    cell(row, dataset.filename || dataset.source);
    cell(row, dataset.rows ?? "");
  }
}

function ended(sweep) {
  return sweep.trials.filter((t) => t.state !== "queued" && t.state !== "running").length;
}

// One chart per metric: the training series and, where the job validated, its val_ twin.
function charts(history, containerId = "charts") {
  const container = document.getElementById(containerId);
  container.replaceChildren();
  if (!history.length) return;
  const names = Object.keys(history[0]).filter((k) => k !== "epoch" && !k.startsWith("val_"));
  for (const name of names) {
    const series = [["train", name], ["validation", `val_${name}`]].filter(([, key]) => key in history[0]);
    container.appendChild(chart(name, series, history));
  }
}

// Round tick values over [low, high]: about `count` of them, at 1, 2 or 5 times a power of ten.
function ticks(low, high, count) {
  const span = high - low || Math.abs(high) || 1;
  const raw = span / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw);
  const first = Math.ceil(low / step) * step;
  const values = [];
  for (let v = first; v <= high + step * 1e-9; v += step) values.push(Number(v.toPrecision(12)));
  return values.length ? values : [low];
}

function num(value) {
  return value === null || value === undefined ? "n/a" : Number(value).toPrecision(6);
}

// A line chart with an epoch axis (or another: `along` names it) and a value axis, both
// ticked, and a readout of every series at the epoch under the pointer.
function chart(name, series, history, along = "epoch") {
  const width = 300, height = 200, left = 50, right = 10, top = 10, bottom = 32;
  const values = series.flatMap(([, key]) => history.map((e) => e[key])).filter((v) => v !== null);
  const yTicks = ticks(Math.min(...values), Math.max(...values), 4);
  const low = Math.min(yTicks[0], ...values), high = Math.max(yTicks[yTicks.length - 1], ...values);
  const span = high - low || 1;
  const epochs = history.map((e) => e.epoch);
  const first = epochs[0], last = epochs[epochs.length - 1];
  const x = (epoch) => left + (last > first ? ((epoch - first) * (width - left - right)) / (last - first) : (width - left - right) / 2);
  const y = (v) => height - bottom - ((v - low) * (height - top - bottom)) / span;
  const ns = "http://www.w3.org/2000/svg";
  const make = (tag, attributes, text) => {
    const element = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attributes)) element.setAttribute(k, v);
    if (text !== undefined) element.textContent = text;
    return element;
  };
  const wrap = document.createElement("div");
  wrap.className = "chart";
  const title = document.createElement("div");
  title.className = "legend";
  title.innerHTML = `<strong></strong> ${series.map(([kind, key]) => `<span class="swatch-${kind}">— ${key}</span>`).join("")}`;
  title.querySelector("strong").textContent = name;
  const svg = make("svg", { width, height, role: "img" });
  svg.dataset.metric = name;
  for (const value of yTicks) {
    svg.append(make("line", { x1: left, x2: width - right, y1: y(value), y2: y(value), class: "grid" }));
    svg.append(make("text", { x: left - 4, y: y(value) + 3, "text-anchor": "end", class: "tick y-tick" }, value.toPrecision(3)));
  }
  const xTicks = ticks(first, last, Math.min(6, epochs.length)).filter((e) => Number.isInteger(e));
  for (const epoch of xTicks) {
    svg.append(make("line", { x1: x(epoch), x2: x(epoch), y1: height - bottom, y2: height - bottom + 4, class: "axis" }));
    svg.append(make("text", { x: x(epoch), y: height - bottom + 15, "text-anchor": "middle", class: "tick x-tick" }, String(epoch)));
  }
  svg.append(make("line", { x1: left, x2: width - right, y1: height - bottom, y2: height - bottom, class: "axis" }));
  svg.append(make("line", { x1: left, x2: left, y1: top, y2: height - bottom, class: "axis" }));
  svg.append(make("text", { x: (left + width - right) / 2, y: height - 4, "text-anchor": "middle", class: "axis-title" }, along));
  for (const [kind, key] of series) {
    const points = history.map((e) => (e[key] === null ? null : `${x(e.epoch).toFixed(1)},${y(e[key]).toFixed(1)}`));
    const line = make("polyline", { points: points.filter(Boolean).join(" "), fill: "none", "stroke-width": "2", class: kind });
    line.dataset.name = key;
    svg.append(line);
  }
  const guide = make("line", { y1: top, y2: height - bottom, class: "guide", visibility: "hidden" });
  svg.append(guide);
  const readout = document.createElement("div");
  readout.className = "readout";
  readout.textContent = "\u00a0";
  // One band per epoch: the pointer over it shows that epoch's values.
  const half = epochs.length > 1 ? (x(epochs[1]) - x(epochs[0])) / 2 : (width - left - right) / 2;
  history.forEach((entry) => {
    const text = `${along} ${entry.epoch}: ` + series.map(([, key]) => `${key} ${num(entry[key])}`).join(", ");
    const band = make("rect", { x: x(entry.epoch) - half, y: top, width: 2 * half, height: height - top - bottom, class: "band" });
    band.dataset.epoch = entry.epoch;
    band.append(make("title", {}, text));
    band.addEventListener("mouseenter", () => {
      readout.textContent = text;
      guide.setAttribute("x1", x(entry.epoch));
      guide.setAttribute("x2", x(entry.epoch));
      guide.setAttribute("visibility", "visible");
    });
    svg.append(band);
  });
  svg.addEventListener("mouseleave", () => guide.setAttribute("visibility", "hidden"));
  wrap.append(title, svg, readout);
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

// A sweep: its status, the objective of each completed trial, the trials, and the best
// trial's curves.
async function showSweep(id) {
  selectedSweep = id;
  const sweep = await api(`/v1/sweeps/${encodeURIComponent(id)}`);
  document.getElementById("job").hidden = true;
  document.getElementById("sweep").hidden = false;
  document.getElementById("sweep-title").textContent = `sweep ${sweep.id}`;
  const link = document.getElementById("sweep-link");
  link.href = `#sweep/${encodeURIComponent(sweep.id)}`;
  link.textContent = `${location.origin}${location.pathname}#sweep/${sweep.id}`;
  const status = document.getElementById("sweep-status");
  status.textContent = sweep.status;
  status.className = `status-${sweep.status}`;
  const counts = Object.entries(sweep.counts).filter(([, n]) => n).map(([state, n]) => `${n} ${state}`);
  document.getElementById("sweep-progress").textContent = `trials ${ended(sweep)}/${sweep.max_trials}: ${counts.join(", ")}`;
  document.getElementById("sweep-error").textContent = sweep.error || "";
  document.getElementById("sweep-cancel").hidden = FINISHED.has(sweep.status) || sweep.cancel_requested;
  const metric = sweep.spec.objective.metric;
  const scored = sweep.trials.filter((t) => t.value !== null).map((t) => ({ epoch: t.number, [metric]: t.value }));
  const objective = document.getElementById("sweep-objective");
  objective.replaceChildren();
  if (scored.length) objective.append(chart(`${metric} per trial`, [["validation", metric]], scored, "trial"));
  const paths = Object.keys(sweep.spec.space);
  const head = document.querySelector("#trials thead tr");
  head.replaceChildren();
  // A path's column is headed by its last name (its full path on hover) where that is unique.
  const lasts = paths.map((path) => path.split(".").pop());
  const short = new Set(lasts).size === lasts.length ? lasts : paths;
  for (const [title, full] of [["trial"], ["state"], [metric], ["epochs"], ...short.map((t, i) => [t, paths[i]])]) {
    const th = document.createElement("th");
    th.textContent = title;
    if (full) th.title = full;
    head.append(th);
  }
  const body = document.querySelector("#trials tbody");
  body.replaceChildren();
  for (const trial of sweep.trials) {
    const row = body.insertRow();
    row.className = sweep.best && trial.number === sweep.best.number ? "best" : "";
    // The trial's number opens its job (the id on hover): the table stays narrow.
    const anchor = document.createElement("a");
    anchor.href = `#job/${trial.job_id}`;
    anchor.textContent = trial.number;
    anchor.title = trial.job_id;
    row.insertCell().append(anchor);
    cell(row, trial.state, `status-${trial.state}`);
    cell(row, trial.value === null ? "" : num(trial.value));
    cell(row, trial.epochs);
    for (const path of paths) {
      const value = trial.params[path];
      cell(row, typeof value === "number" && !Number.isInteger(value) ? value.toPrecision(4) : String(value));
    }
  }
  const best = sweep.best;
  document.getElementById("sweep-best").textContent = best
    ? `Best: trial ${best.number} (${metric} ${num(best.value)}), job ${best.job_id}`
    : "No trial has completed yet.";
  if (best) charts((await api(`/v1/jobs/${encodeURIComponent(best.job_id)}`)).history, "sweep-charts");
  else document.getElementById("sweep-charts").replaceChildren();
}

async function showJob(id) {
  selected = id;
  document.getElementById("sweep").hidden = true;
  const job = await api(`/v1/jobs/${encodeURIComponent(id)}`);
  document.getElementById("job").hidden = false;
  document.getElementById("job-title").textContent = job.id;
  const link = document.getElementById("job-link");
  link.href = `#job/${encodeURIComponent(job.id)}`;
  link.textContent = `${location.origin}${location.pathname}#job/${job.id}`;
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
    ...(result.test_loss !== null ? [["test loss", num(result.test_loss)]] : []),
    ...Object.entries(result.test_metrics).map(([k, v]) => [`test ${k}`, num(v)]),
    ["train seconds", result.train_seconds.toFixed(2)],
  ] : []);
  table("#job-data", dataRows(job.spec.data));
  table("#summary", result ? summaryRows(result.model_summary) : []);
  return job;
}

// The job's data: each split's dataset (inline arrays are stored as one), rows and shapes.
function dataRows(data) {
  return ["train", "validation", "test"].filter((split) => data[split]).map((split) => {
    const stored = data[split];
    return [split, stored.dataset_id, stored.rows, `x ${shapeText([null, ...stored.x_shape.slice(1)])}, y ${shapeText([null, ...stored.y_shape.slice(1)])}`];
  });
}

// As Python prints a shape: (None, 4), and (None,) for one dimension.
function shapeText(shape) {
  const dims = shape.map((d) => (d === null ? "None" : d));
  return dims.length === 1 ? `(${dims[0]},)` : `(${dims.join(", ")})`;
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
    const sweep = location.hash.match(/^#sweep\/(.+)$/);
    if (sweep) await showSweep(decodeURIComponent(sweep[1]));
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
document.getElementById("sweep-cancel").addEventListener("click", async () => {
  await api(`/v1/sweeps/${encodeURIComponent(selectedSweep)}/cancel`, { method: "POST" });
  tick();
});
window.addEventListener("hashchange", tick);
tick();
timer = setInterval(tick, 1000);
