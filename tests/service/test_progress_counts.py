"""A batch's counts move while it runs, and polling and the event stream tell the same story."""

from __future__ import annotations

import threading
import time

import httpx

from tests.corpus import synthetic_documents
from tests.service.conftest import Stack
from tests.service.server import auth
from tests.service.sse import Event, stream

DOCUMENTS = 150


def test_poll_counts_move_during_the_run_and_agree_with_the_events(stack: Stack) -> None:
    documents = [
        {"id": f"counts/{item.name}", "text": item.data.decode()}
        for item in synthetic_documents(DOCUMENTS, sentences=8)
    ]
    accepted = httpx.post(f"{stack.url}/batches", json={"documents": documents}, headers=auth())
    assert accepted.status_code == 202, accepted.text
    batch_id = accepted.json()["batch_id"]
    events: list[Event] = []
    reader = threading.Thread(target=_read_events, args=(stack.url, batch_id, events))
    reader.start()
    polls = []
    deadline = time.monotonic() + 300
    while not polls or polls[-1]["state"] not in ("complete", "failed"):
        assert time.monotonic() < deadline, polls[-1:]
        body = httpx.get(f"{stack.url}/batches/{batch_id}", headers=auth(), timeout=30).json()
        polls.append(body)
        time.sleep(0.1)
    reader.join(timeout=120)
    final = polls[-1]
    assert final["state"] == "complete"
    progress = final["progress"]
    assert progress["documents"] == DOCUMENTS

    # While the batch ran, polls already showed its chunks, and extraction under way.
    running = [p["progress"] for p in polls if p["state"] not in ("pending", "complete")]
    assert any(p["chunks_total"] == progress["chunks_total"] > 0 for p in running), running
    extracting = [p["progress"] for p in polls if p["state"] == "extracting"]
    assert any(p["chunks_done"] > 0 for p in extracting), extracting
    done = [p["progress"]["chunks_done"] for p in polls]
    assert done == sorted(done), "a poll went back"

    # The stream's last word on each count is the poll's.
    chunked = [e.data for e in events if e.kind == "progress" and e.data["stage"] == "chunks"]
    extracted = [
        e.data for e in events if e.kind == "progress" and e.data["stage"] == "extractions"
    ]
    graph = [e.data for e in events if e.kind == "entity_count"]
    assert chunked[-1]["total"] == progress["chunks_total"]
    assert extracted[-1]["done"] == extracted[-1]["total"] == progress["chunks_done"]
    assert (graph[-1]["entities"], graph[-1]["relations"]) == (
        progress["entities"],
        progress["relations"],
    )
    assert events[-1].kind == "complete"


def _progress(events: list[Event], stage: str) -> list[dict]:
    return [e.data for e in events if e.kind == "progress" and e.data["stage"] == stage]


def _read_events(url: str, batch_id: str, into: list[Event]) -> None:
    with httpx.Client() as client:
        into.extend(stream(client, f"{url}/batches/{batch_id}/events", auth()))
