"""The stream follows a batch into its retry run after the run worker is killed mid-extraction."""

from __future__ import annotations

import random
from pathlib import Path

import httpx

from knowledge_assets.failpoints import arm, fired
from tests.service.conftest import Stack, demo_documents
from tests.service.server import auth
from tests.service.test_events import assert_same_sequence, follow_with_disconnects, full_stream


def test_stream_follows_the_retry_run_without_gap_or_duplicate(stack: Stack) -> None:
    failpoints = Path(stack.env["KNOWLEDGE_FAILPOINTS"])
    arm(failpoints, "extractions.chunk", 2)  # kill -9 of the run worker at its second chunk
    documents = [*demo_documents(), {"id": "retry.txt", "text": "Alan Turing lived in Wilmslow."}]
    accepted = httpx.post(f"{stack.url}/batches", json={"documents": documents}, headers=auth())
    batch_id = accepted.json()["batch_id"]
    seen = follow_with_disconnects(stack.url, batch_id, random.Random(11), max_cut=3000)
    assert fired(failpoints, "extractions.chunk")
    kinds = [e.kind for e in seen]
    failure = next(e for e in seen if e.kind == "error")
    assert failure.data["will_retry"] is True
    assert "retry" in kinds[kinds.index("error") :]
    assert len({e.data["run_id"] for e in seen}) == 2
    assert seen[-1].kind == "complete"
    assert_same_sequence(seen, full_stream(stack.url, batch_id))
    status = httpx.get(f"{stack.url}/batches/{batch_id}", headers=auth()).json()
    assert status["state"] == "complete" and len(status["runs"]) == 2
    # Which worker node ran each attempt, through the Orchestrator (the API reads no lease itself).
    assert set(status["workers"]) == set(status["runs"])
    assert all(node.startswith("test@") for node in status["workers"].values())


def test_interrupt_and_resume_leave_a_complete_batch_alone(stack: Stack) -> None:
    before = httpx.get(f"{stack.url}/batches/{stack.batch_id}", headers=auth()).json()
    for action in ("interrupt", "resume"):
        after = httpx.post(f"{stack.url}/batches/{stack.batch_id}/{action}", headers=auth())
        assert after.status_code == 200
        assert (after.json()["state"], after.json()["runs"]) == ("complete", before["runs"])
