// Batches page: lists batches and follows each one's SSE stream with EventSource.
// The API token never goes into a URL: it is kept in sessionStorage (taken from the login form or
// from the URL fragment #token=..., which browsers never send to the server) and used only in
// Authorization headers. EventSource cannot send headers, so each stream is opened with a
// short-lived signed token from POST /auth/stream-token; when a stream drops, a fresh token is
// fetched and the stream reopened after the last event id received.
"use strict";

let STAGES = [];  // the pipeline's stages, in order, as GET /batches names them
const TERMINAL = new Set(["complete", "failed"]);
const rows = new Map();

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
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

function showLogin(message) {
  document.getElementById("login").hidden = false;
  setStatus(message || "");
}

function setStatus(text) { document.getElementById("status").textContent = text; }

function cell(tr, name) { return tr.querySelector(`[data-cell="${name}"]`); }

function ensureRow(batch) {
  let row = rows.get(batch.batch_id);
  if (row) return row;
  const tr = document.createElement("tr");
  tr.dataset.batch = batch.batch_id;
  tr.innerHTML = `<td class="batch-id" data-cell="id"></td>
    <td><span class="state" data-cell="state"></span><div class="stage" data-cell="stage"></div></td>
    <td><progress data-cell="bar" max="${STAGES.length}" value="0"></progress>
        <div class="stage" data-cell="detail"></div></td>
    <td data-cell="counts"></td>
    <td><a data-cell="link" target="_blank" rel="noopener">assets</a></td>`;
  cell(tr, "id").textContent = batch.batch_id;
  cell(tr, "link").href = batch.dagster_url;
  document.querySelector("#batches tbody").prepend(tr);
  row = { tr, lastId: null, source: null, state: null, finished: new Set() };
  rows.set(batch.batch_id, row);
  return row;
}

function showState(row, state) {
  row.state = state;
  const el = cell(row.tr, "state");
  el.textContent = state;
  el.className = `state ${state}`;
  if (state === "complete") {
    cell(row.tr, "bar").value = STAGES.length;
  }
}

function showBatch(batch) {
  const row = ensureRow(batch);
  showState(row, batch.state);
  cell(row.tr, "stage").textContent = batch.stage || "";
  const p = batch.progress;
  cell(row.tr, "counts").textContent =
    `${p.documents} docs, ${p.chunks_done}/${p.chunks_total} chunks, ${p.entities} entities, ${p.relations} relations`;
  if (!TERMINAL.has(batch.state) && !row.source && !row.opening) {
    // One stream per row: the list refreshes every second, opening a stream takes a request.
    row.opening = true;
    follow(batch.batch_id, row).catch(report).finally(() => { row.opening = false; });
  }
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
  if (kind === "entity_count") {
    cell(row.tr, "counts").textContent = `${data.entities} entities, ${data.relations} relations`;
  }
  if (kind === "retry") cell(row.tr, "detail").textContent = data.message || "retrying";
  if (kind === "error") cell(row.tr, "detail").textContent = data.message || "error";
  if (kind === "complete" || (kind === "error" && data.will_retry === false)) {
    row.source.close();
    row.source = null;
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

function report(error) { setStatus(String(error.message || error)); }

async function refresh() {
  const page = await api("/batches?limit=50");
  STAGES = page.stages;
  page.items.reverse().forEach(showBatch);
  setStatus(page.items.length ? "" : "no batches yet: submit some with `knowledge submit PATH --follow`");
}

function start() {
  takeTokenFromFragment();
  document.getElementById("login").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem("knowledge-token", document.getElementById("token").value);
    document.getElementById("login").hidden = true;
    refresh().catch(report);
  });
  if (!token()) return showLogin("enter the API token");
  refresh().catch(report);
  // New batches appear within a second, so even a short batch is seen while it runs.
  setInterval(() => { if (token()) refresh().catch(report); }, 1000);
}

start();
