"""The web page in headless Chromium: batches followed live, and the graph explored.

A submitted batch's row follows its run (state, progress bar and counts move before Complete,
then source, times and links); an entity of the demo corpus is searched, opened, shown with a
highlighted mention in its document and its neighbourhood drawn by cytoscape.js. What is drawn
is checked through the DOM and the canvases' pixels, not by eye.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from knowledge_assets.demo import corpus_files
from tests.corpus import synthetic_documents
from tests.service.browser import Browser, find_chromium
from tests.service.conftest import Stack
from tests.service.server import TOKEN, auth

ROW = 'document.querySelector(`tr[data-batch="{id}"] [data-cell="{cell}"]`)?.{prop}'
# Non-transparent pixels across the graph's canvases: cytoscape draws nodes and edges there.
PAINTED = """(() => {
  let painted = 0;
  for (const canvas of document.querySelectorAll('#graph canvas')) {
    if (!canvas.width || !canvas.height) continue;
    const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) painted++;
  }
  return painted;
})()"""


@pytest.fixture
def browser() -> Iterator[Browser]:
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("no Chromium installed: `make test-e2e` installs Debian's chromium package")
    opened = Browser(chromium)
    try:
        yield opened
    finally:
        opened.close()


def wait_for(browser: Browser, expression: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := browser.evaluate(expression)):
        assert time.monotonic() < deadline, f"never true: {expression}"
        time.sleep(0.2)
    return value


def test_a_batch_row_follows_its_run_with_moving_counts(stack: Stack, browser: Browser) -> None:
    browser.navigate(f"{stack.url}/#token={TOKEN}")
    documents = [
        {"id": f"page/{item.name}", "text": item.data.decode()}
        for item in synthetic_documents(150, sentences=7)
    ]
    accepted = httpx.post(f"{stack.url}/batches", json={"documents": documents}, headers=auth())
    assert accepted.status_code == 202, accepted.text
    batch_id = accepted.json()["batch_id"]
    states: list[str] = []
    counts: list[str] = []
    deadline = time.monotonic() + 300
    while (
        state := browser.evaluate(ROW.format(id=batch_id, cell="state", prop="textContent"))
    ) != ("complete"):
        assert time.monotonic() < deadline, f"page stuck at {states}"
        shown = browser.evaluate(ROW.format(id=batch_id, cell="counts", prop="textContent"))
        if state and (not states or states[-1] != state):
            states.append(state)
        if shown and (not counts or counts[-1] != shown):
            counts.append(shown)
        time.sleep(0.1)
    assert len(states) >= 1  # it was followed live, not only read once finished
    # The counts column moved while the batch ran (documents, then chunks, then extraction).
    assert len(counts) >= 3, counts
    assert any(
        "/150 chunks" in text and not text.startswith("150 documents, 0/") for text in counts
    )
    assert counts[0] != counts[-1]

    row = {
        name: browser.evaluate(ROW.format(id=batch_id, cell=name, prop="textContent"))
        for name in ("source", "submitted", "finished", "duration", "documents")
    }
    wait_for(browser, ROW.format(id=batch_id, cell="finished", prop="textContent"), 30)
    row["finished"] = browser.evaluate(ROW.format(id=batch_id, cell="finished", prop="textContent"))
    row["duration"] = browser.evaluate(ROW.format(id=batch_id, cell="duration", prop="textContent"))
    assert row["source"] == "api"
    assert row["submitted"] and row["finished"] and row["duration"].endswith("s")
    assert row["documents"].startswith("150 documents accepted")
    bar = browser.evaluate(ROW.format(id=batch_id, cell="bar", prop="value"))
    assets = browser.evaluate(ROW.format(id=batch_id, cell="link", prop="href"))
    run = browser.evaluate(ROW.format(id=batch_id, cell="run", prop="href"))
    assert bar == 6
    assert batch_id in assets and assets.startswith(stack.settings.dagster_ui_url)
    assert run.startswith(f"{stack.settings.dagster_ui_url}/runs/")


def test_an_entity_is_searched_opened_highlighted_and_drawn(stack: Stack, browser: Browser) -> None:
    entity = _demo_entity_with_relations(stack)
    browser.navigate(f"{stack.url}/#token={TOKEN}")
    wait_for(browser, "document.querySelector('#batches tbody tr') !== null")
    browser.evaluate(f"location.hash = '#explore?q=' + encodeURIComponent({entity['name']!r})")
    link = f"document.querySelector('#results a[data-entity=\"{entity['id']}\"]')"
    wait_for(browser, f"{link} !== null")
    browser.evaluate(f"{link}.click()")

    wait_for(browser, f"document.getElementById('entity').dataset.entity === {entity['id']!r}")
    assert browser.evaluate("document.getElementById('entity-name').textContent") == entity["name"]
    wait_for(browser, "document.querySelector('#mentions mark.this') !== null")
    marked = browser.evaluate(
        "[...document.querySelectorAll('#mentions mark.this')].map(m => m.textContent)"
    )
    assert set(marked) <= {m["text"] for m in entity["mentions"]}
    assert marked

    wait_for(browser, "document.getElementById('graph').dataset.drawn === 'true'")
    nodes = int(browser.evaluate("document.getElementById('graph').dataset.nodes"))
    edges = int(browser.evaluate("document.getElementById('graph').dataset.edges"))
    related = entity["relations_out"] + entity["relations_in"]
    assert edges == len(related) and nodes >= 2
    sizes = browser.evaluate(
        "[...document.querySelectorAll('#graph canvas')].map(c => [c.width, c.height])"
    )
    assert sizes and all(width > 100 and height > 100 for width, height in sizes)
    assert wait_for(browser, PAINTED) > 500
    relations = browser.evaluate("document.querySelectorAll('#relations tbody tr').length")
    assert relations == len(related)
    evidence = browser.evaluate("document.querySelector('#relations blockquote').textContent")
    assert any(q["text"] in evidence for r in related for q in r["evidence"])


def _demo_entity_with_relations(stack: Stack) -> dict[str, Any]:
    """An entity of the demo corpus with relations, as the API gives it."""
    demo = {p.name for p in corpus_files()}
    for offset in range(0, 5000, 200):
        params = {"limit": 200, "offset": offset}
        items = httpx.get(f"{stack.url}/entities", params=params, headers=auth()).json()["items"]
        for summary in items:
            detail = httpx.get(f"{stack.url}/entities/{summary['id']}", headers=auth()).json()
            in_demo = any(m["document"] in demo for m in detail["mentions"])
            if in_demo and detail["relations_out"] and len(detail["name"]) > 3:
                return dict(detail)
        if len(items) < 200:
            break
    raise AssertionError("the demo corpus gave no entity with relations")
