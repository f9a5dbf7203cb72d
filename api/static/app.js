// The page's shell and its batches view: lists batches and follows each one's SSE stream.
// The API token never goes into a URL: it is kept in sessionStorage (taken from the login form or
// from the URL fragment #token=..., which browsers never send to the server) and used only in
// Authorization headers. EventSource cannot send headers, so each stream is opened with a
// short-lived signed token from POST /auth/stream-token; when a stream drops, a fresh token is
// fetched and the stream reopened after the last event id received.
// explore.js (the graph explorer) uses api(), el(), counted() and the view routing from here.
"use strict";

let STAGES = [];  // the pipeline's stages, in order, as GET /batches names them
const TERMINAL = new Set(["complete", "failed"]);
const rows = new Map();
const views = {};  // view name -> function(argument) that shows it, registered by each script

function token() { return sessionStorage.getItem("knowledge-token"); }

function takeTokenFromFragment() {
  const match = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (match) {
    sessionStorage.setItem("knowledge-token", decodeURIComponent(match[1]));
    history.replaceState(null, "", location.pathname);
  }
}

async function api(path, options = {}) {
  const response = await fetch(path, {
    ...options,
    headers: { ...(options.headers || {}), Authorization: `Bearer ${token()}` },
  });
  if (response.status === 401) {
    sessionStorage.removeItem("knowledge-token");
    showLogin("token refused: enter it again");
    throw new Error("unauthorized");
  }
  if (!response.ok) {
    const body = await response.json().catch(() => null);
    throw new Error(body?.error?.message || `${path}: HTTP ${response.status}`);
  }
  return response.json();
}

// An element with text content (never HTML: names and texts come from user documents).
function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

const IRREGULAR = { entity: "entities", batch: "batches" };
function counted(number, noun) {
  return number === 1 ? `1 ${noun}` : `${number} ${IRREGULAR[noun] || noun + "s"}`;
}

function when(iso) { return iso ? new Date(iso).toLocaleString() : ""; }

function seconds(value) {
  if (value === null || value === undefined) return "";
  return value < 120 ? `${value.toFixed(1)} s` : `${Math.floor(value / 60)} min ${Math.round(value % 60)} s`;
}

function showLogin(message) {
  document.getElementById("login").hidden = false;
  setStatus(message || "");
}

function setStatus(text) { document.getElementById("status").textContent = text; }

function report(error) { setStatus(String(error.message || error)); }

// -- views ----------------------------------------------------------------------------------

// #batches, #explore, #explore?q=..&type=.., #entity/<id>
function route() {
  const hash = location.hash.slice(1);
  const [head, ...rest] = hash.split("/");
  const [name, query] = head.split("?");
  const view = name === "entity" ? "explore" : (views[name] ? name : "batches");
  for (const section of document.querySelectorAll("main > section")) {
    section.hidden = section.dataset.view !== view;
  }
  for (const link of document.querySelectorAll("nav a")) {
    link.classList.toggle("current", link.dataset.view === view);
  }
  const show = views[name === "entity" ? "entity" : view];
  if (show) show(name === "entity" ? decodeURIComponent(rest.join("/")) : new URLSearchParams(query || ""));
}

// -- batches --------------------------------------------------------------------------------

function cell(tr, name) { return tr.querySelector(`[data-cell="${name}"]`); }

function ensureRow(batch) {
  let row = rows.get(batch.batch_id);
  if (row) return row;
  const tr = document.createElement("tr");
  tr.dataset.batch = batch.batch_id;
  tr.innerHTML = `<td><span class="batch-id" data-cell="id"></span><br><span class="source" data-cell="source"></span></td>
    <td><span class="state" data-cell="state"></span><div class="stage" data-cell="stage"></div></td>
    <td><progress data-cell="bar" max="${STAGES.length}" value="0"></progress>
        <div class="stage" data-cell="detail"></div></td>
    <td data-cell="counts"></td>
    <td data-cell="submitted"></td>
    <td><span data-cell="finished"></span><div class="stage" data-cell="duration"></div></td>
    <td data-cell="documents"></td>
    <td><a data-cell="run" target="_blank" rel="noopener">run</a>
        <a data-cell="link" target="_blank" rel="noopener">assets</a></td>`;
  cell(tr, "id").textContent = batch.batch_id;
  cell(tr, "link").href = batch.dagster_url;
  document.querySelector("#batches tbody").prepend(tr);
  row = { tr, lastId: null, source: null, state: null, finished: new Set(), counts: null, graphSeen: false };
  rows.set(batch.batch_id, row);
  return row;
}

function showState(row, state) {
  row.state = state;
  const node = cell(row.tr, "state");
  node.textContent = state;
  node.className = `state ${state}`;
  if (state === "complete") cell(row.tr, "bar").value = STAGES.length;
}

function showCounts(row) {
  const c = row.counts;
  const reused = c.chunks_reused ? ` (${c.chunks_reused} reused)` : "";
  cell(row.tr, "counts").textContent =
    `${counted(c.documents, "document")}, ${c.chunks_done}/${counted(c.chunks_total, "chunk")}${reused}, ` +
    `${counted(c.entities, "entity")}, ${counted(c.relations, "relation")}`;
}

// Counts from a poll. While the row's stream is open its events are fresher: a poll then only
// moves counts forward, and never replaces the graph counts the stream already gave.
function takePolledCounts(row, batch) {
  const polled = { ...batch.progress };
  if (!row.counts || !row.source || TERMINAL.has(batch.state)) {
    row.counts = polled;
    return;
  }
  for (const key of ["documents", "chunks_total", "chunks_done", "chunks_reused"]) {
    row.counts[key] = Math.max(row.counts[key], polled[key]);
  }
  if (!row.graphSeen) {
    row.counts.entities = polled.entities;
    row.counts.relations = polled.relations;
  }
}

function showDocuments(row, batch) {
  const node = cell(row.tr, "documents");
  const refused = batch.documents.filter((d) => d.status !== "accepted");
  const accepted = batch.documents.length - refused.length;
  node.replaceChildren(el("span", counted(accepted, "document") + " accepted"));
  if (!refused.length) return;
  const details = el("details", null, "refused");
  details.append(el("summary", `${refused.length} refused or quarantined`));
  const list = el("ul");
  for (const d of refused) list.append(el("li", `${d.name} (${d.status}): ${d.reason || ""}`));
  details.append(list);
  node.append(details);
}

function showBatch(batch) {
  const row = ensureRow(batch);
  showState(row, batch.state);
  cell(row.tr, "stage").textContent = batch.stage || "";
  cell(row.tr, "source").textContent = batch.source || "?";
  cell(row.tr, "submitted").textContent = when(batch.submitted_at);
  cell(row.tr, "finished").textContent = when(batch.finished_at);
  cell(row.tr, "duration").textContent = seconds(batch.duration_s);
  const run = cell(row.tr, "run");
  run.hidden = !batch.run_url;
  if (batch.run_url) run.href = batch.run_url;
  showDocuments(row, batch);
  takePolledCounts(row, batch);
  showCounts(row);
  if (!TERMINAL.has(batch.state) && !row.source && !row.opening) {
    // One stream per row: the list refreshes every second, opening a stream takes a request.
    row.opening = true;
    follow(batch.batch_id, row).catch(report).finally(() => { row.opening = false; });
  }
}

// Each event moves the row's counts at once: the counts column follows the run as it goes.
function countEvent(row, kind, data) {
  if (!row.counts) return;
  const c = row.counts;
  if (kind === "progress" && data.stage === "documents") c.documents = data.done ?? c.documents;
  if (kind === "progress" && data.stage === "chunks") c.chunks_total = data.total ?? c.chunks_total;
  if (kind === "progress" && data.stage === "extractions") {
    c.chunks_done = data.done ?? c.chunks_done;
    c.chunks_total = data.total ?? c.chunks_total;
    c.chunks_reused = data.reused ?? c.chunks_reused;
  }
  if (kind === "entity_count") {
    c.entities = data.entities ?? c.entities;
    c.relations = data.relations ?? c.relations;
    row.graphSeen = true;
  }
  showCounts(row);
}

function onEvent(row, kind, event) {
  row.lastId = event.lastEventId || row.lastId;
  const data = JSON.parse(event.data);
  if (kind === "state") showState(row, data.state);
  if (kind === "stage") {
    cell(row.tr, "stage").textContent = `${data.stage} ${data.status}`;
    if (data.status === "finished") row.finished.add(data.stage);
    cell(row.tr, "bar").value = row.finished.size;
  }
  if (kind === "progress" && data.total) {
    cell(row.tr, "detail").textContent = `${data.stage}: ${data.done}/${data.total}` +
      (data.reused ? ` (${data.reused} reused)` : "");
  }
  if (kind === "progress" || kind === "entity_count") countEvent(row, kind, data);
  if (kind === "retry") cell(row.tr, "detail").textContent = data.message || "retrying";
  if (kind === "error") cell(row.tr, "detail").textContent = data.message || "error";
  if (kind === "complete" || (kind === "error" && data.will_retry === false)) {
    row.source.close();
    row.source = null;
    refresh().catch(report);  // the finished time and final counts, now
  }
}

async function follow(batchId, row) {
  const { token: streamToken } = await api("/auth/stream-token", { method: "POST" });
  let url = `/batches/${batchId}/events?access_token=${encodeURIComponent(streamToken)}`;
  if (row.lastId) url += `&after=${encodeURIComponent(row.lastId)}`;
  const source = new EventSource(url);
  row.source = source;
  for (const kind of ["state", "stage", "progress", "entity_count", "retry", "error", "complete"]) {
    source.addEventListener(kind, (event) => onEvent(row, kind, event));
  }
  source.onerror = () => {
    // The signed token may have expired: reopen with a new one, after the last event seen.
    source.close();
    if (row.source === source) {
      row.source = null;
      if (!TERMINAL.has(row.state)) setTimeout(() => follow(batchId, row).catch(report), 1000);
    }
  };
}

async function refresh() {
  const page = await api("/batches?limit=50");
  STAGES = page.stages;
  page.items.reverse().forEach(showBatch);
  if (!document.getElementById("batches-view").hidden) {
    setStatus(page.items.length ? "" : "no batches yet: submit some with `knowledge submit PATH --follow`");
  }
}

function start() {
  takeTokenFromFragment();
  window.addEventListener("hashchange", route);
  document.getElementById("login").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem("knowledge-token", document.getElementById("token").value);
    document.getElementById("login").hidden = true;
    refresh().catch(report);
    route();
  });
  if (!token()) return showLogin("enter the API token");
  refresh().catch(report);
  // New batches appear within a second, so even a short batch is seen while it runs.
  setInterval(() => { if (token()) refresh().catch(report); }, 1000);
}

views.batches = () => {};
start();
// explore.js registers its views, then routes the current address.
