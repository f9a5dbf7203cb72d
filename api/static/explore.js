// The graph explorer: entity search by name and type, and an entity's page: its facts, its
// neighbourhood drawn with cytoscape.js (vendored, see static/vendor/cytoscape/README.md), its
// relations with their evidence, and its mentions highlighted in their documents' text.
// Uses api(), el(), counted(), views and route() from app.js.
"use strict";

const MAX_DOCUMENTS = 8;      // documents shown in full for one entity; more are listed
const CONTEXT = 240;          // characters shown around mentions in long documents
let graph = null;
let typesLoaded = false;

async function loadTypes() {
  if (typesLoaded) return;
  const select = document.getElementById("type");
  for (const type of await api("/types")) {
    const option = el("option", `${type.name} (${type.entities})`);
    option.value = type.name;
    select.append(option);
  }
  typesLoaded = true;
}

async function search(params) {
  await loadTypes();
  document.getElementById("entity").hidden = true;
  const q = params.get("q") || "";
  const type = params.get("type") || "";
  document.getElementById("q").value = q;
  document.getElementById("type").value = type;
  const query = new URLSearchParams({ limit: "50" });
  if (q) query.set("q", q);
  if (type) query.set("type", type);
  const page = await api(`/entities?${query}`);
  const list = document.getElementById("results");
  list.replaceChildren();
  for (const entity of page.items) {
    const item = el("li");
    const link = el("a", entity.name);
    link.href = `#entity/${encodeURIComponent(entity.id)}`;
    link.dataset.entity = entity.id;
    item.append(link, el("span", ` ${entity.types.join(", ")} · ${counted(entity.mention_count, "mention")}`, "muted"));
    list.append(item);
  }
  setStatus(page.items.length ? "" : "no entity matches");
}

function entityLink(ref) {
  const link = el("a", ref.name);
  link.href = `#entity/${encodeURIComponent(ref.id)}`;
  link.title = ref.types.join(", ");
  return link;
}

function fact(list, term, value) {
  list.append(el("dt", term));
  const dd = el("dd");
  if (value instanceof Node) dd.append(value); else dd.textContent = value;
  list.append(dd);
}

async function showEntity(entityId) {
  await loadTypes();
  document.getElementById("results").replaceChildren();
  const entity = await api(`/entities/${encodeURIComponent(entityId)}`);
  const article = document.getElementById("entity");
  article.hidden = false;
  article.dataset.entity = entity.id;
  document.getElementById("entity-name").textContent = entity.name;
  const facts = document.getElementById("entity-facts");
  facts.replaceChildren();
  fact(facts, "types", entity.types.join(", "));
  fact(facts, "aliases", entity.aliases.join(" · ") || "none");
  fact(facts, "mentions", counted(entity.mention_count, "mention"));
  const canonical = entity.canonical;
  fact(facts, "canonical entity", canonical
    ? `${canonical.name} (${canonical.types.join(", ")}; ${counted(canonical.members, "member")}, ` +
      `${counted(canonical.mention_count, "mention")}; also known as ${canonical.aliases.join(" · ") || "nothing else"})`
    : "not merged into the registry yet");
  fact(facts, "id", entity.id);
  showRelations(entity);
  drawNeighbourhood(entity);
  await showMentions(entity);
  setStatus("");
}

function showRelations(entity) {
  const body = document.querySelector("#relations tbody");
  body.replaceChildren();
  const relations = [...entity.relations_out, ...entity.relations_in];
  if (!relations.length) {
    const tr = el("tr");
    const td = el("td", "no relations", "muted");
    td.colSpan = 4;
    tr.append(td);
    body.append(tr);
  }
  for (const relation of relations) {
    const tr = el("tr");
    const subject = el("td");
    subject.append(entityLink(relation.subject));
    const object = el("td");
    object.append(relation.object ? entityLink(relation.object) : el("q", relation.object_literal));
    const evidence = el("td");
    for (const quote of relation.evidence) {
      const block = el("blockquote", quote.text);
      block.append(el("div", `${quote.document} [${quote.start}–${quote.end}]`, "muted"));
      evidence.append(block);
    }
    tr.append(subject, el("td", relation.predicate), object, evidence);
    body.append(tr);
  }
}

// The entity and every entity one relation away; edges labelled with the relation.
function neighbourhood(entity) {
  const nodes = new Map([[entity.id, { id: entity.id, label: entity.name, center: true }]]);
  const edges = [];
  for (const relation of [...entity.relations_out, ...entity.relations_in]) {
    const target = relation.object
      ? relation.object
      : { id: `literal:${relation.id}`, name: relation.object_literal, types: [] };
    for (const end of [relation.subject, target]) {
      if (!nodes.has(end.id)) nodes.set(end.id, { id: end.id, label: end.name, literal: !relation.object && end === target });
    }
    edges.push({ id: relation.id, source: relation.subject.id, target: target.id, label: relation.predicate });
  }
  return { nodes: [...nodes.values()], edges };
}

function drawNeighbourhood(entity) {
  const container = document.getElementById("graph");
  const { nodes, edges } = neighbourhood(entity);
  if (graph) graph.destroy();
  graph = cytoscape({
    container,
    elements: [
      ...nodes.map((data) => ({ data, classes: data.center ? "center" : (data.literal ? "literal" : "") })),
      ...edges.map((data) => ({ data })),
    ],
    layout: { name: "preset" },  // laid out below, once the listener is in place
    style: [
      { selector: "node", style: { label: "data(label)", "background-color": "#64748b", color: "#111", "font-size": 11, "text-valign": "bottom", "text-margin-y": 4 } },
      { selector: "node.center", style: { "background-color": "#d97706", width: 40, height: 40, "font-weight": "bold" } },
      { selector: "node.literal", style: { shape: "round-rectangle", "background-color": "#cbd5e1" } },
      { selector: "edge", style: { label: "data(label)", "curve-style": "bezier", "target-arrow-shape": "triangle", width: 1.5, "font-size": 10, "text-rotation": "autorotate", color: "#334155" } },
    ],
    wheelSensitivity: 0.3,
    maxZoom: 1.3,  // a few nodes fitted to the box would otherwise be drawn huge
  });
  graph.on("tap", "node", (event) => {
    const id = event.target.id();
    if (!id.startsWith("literal:") && id !== entity.id) location.hash = `#entity/${encodeURIComponent(id)}`;
  });
  graph.one("layoutstop", () => {
    container.dataset.nodes = String(graph.nodes().length);
    container.dataset.edges = String(graph.edges().length);
    container.dataset.drawn = "true";
  });
  container.dataset.drawn = "false";
  const layout = nodes.length > 2
    ? { name: "concentric", concentric: (n) => (n.hasClass("center") ? 2 : 1), levelWidth: () => 1 }
    : { name: "grid" };
  graph.layout({ ...layout, padding: 30 }).run();
}

async function showMentions(entity) {
  const target = document.getElementById("mentions");
  target.replaceChildren();
  const byDocument = new Map();
  for (const mention of entity.mentions) {
    if (!byDocument.has(mention.document_id)) byDocument.set(mention.document_id, []);
    byDocument.get(mention.document_id).push(mention);
  }
  const ids = [...byDocument.keys()];
  for (const documentId of ids.slice(0, MAX_DOCUMENTS)) {
    const document_ = await api(`/documents/${encodeURIComponent(documentId)}`);
    target.append(documentBlock(document_, entity.id));
  }
  if (ids.length > MAX_DOCUMENTS) {
    const rest = ids.slice(MAX_DOCUMENTS).map((id) => byDocument.get(id)[0].document);
    target.append(el("p", `also mentioned in ${counted(rest.length, "other document")}: ${rest.join(", ")}`, "muted"));
  }
}

// The document's text with every mention marked; this entity's mentions stand out. A long
// document shows only the passages around this entity's mentions.
function documentBlock(doc, entityId) {
  const block = el("section", null, "document");
  block.append(el("h4", doc.name));
  const pre = el("pre");
  const own = doc.mentions.filter((m) => m.entity_id === entityId);
  const windows = doc.text.length <= 4 * CONTEXT ? [[0, doc.text.length]] : passages(own, doc.text.length);
  windows.forEach(([from, to], index) => {
    if (index > 0 || from > 0) pre.append(el("span", " … ", "muted"));
    appendMarked(pre, doc.text, from, to, doc.mentions, entityId);
  });
  if (windows.length && windows[windows.length - 1][1] < doc.text.length) pre.append(el("span", " …", "muted"));
  block.append(pre);
  return block;
}

function passages(mentions, length) {
  const merged = [];
  for (const m of mentions) {
    const from = Math.max(0, m.start - CONTEXT), to = Math.min(length, m.end + CONTEXT);
    const last = merged[merged.length - 1];
    if (last && from <= last[1]) last[1] = Math.max(last[1], to); else merged.push([from, to]);
  }
  return merged;
}

function appendMarked(parent, text, from, to, mentions, entityId) {
  let at = from;
  for (const m of mentions) {
    if (m.start < at || m.end > to || m.start < from) continue;  // outside, or overlapping one shown
    parent.append(document.createTextNode(text.slice(at, m.start)));
    const mark = el("mark", text.slice(m.start, m.end), m.entity_id === entityId ? "this" : "");
    mark.title = m.label;
    mark.dataset.start = String(m.start);
    parent.append(mark);
    at = m.end;
  }
  parent.append(document.createTextNode(text.slice(at, to)));
}

document.getElementById("search").addEventListener("submit", (event) => {
  event.preventDefault();
  const query = new URLSearchParams();
  const q = document.getElementById("q").value.trim();
  const type = document.getElementById("type").value;
  if (q) query.set("q", q);
  if (type) query.set("type", type);
  location.hash = `#explore?${query}`;
});

views.explore = (params) => search(params).catch(report);
views.entity = (entityId) => showEntity(entityId).catch(report);
if (token()) route();
