"""The SSE stream: replay, resume after random disconnects, restarts, caps and frozen clients."""

from __future__ import annotations

import logging
import random
import socket
import threading
import time

import httpx
import pytest
import sqlalchemy as sa

from knowledge_assets.db.engine import database_url, engine_for
from tests.service.conftest import Stack, demo_documents
from tests.service.runs import long_running_extraction, progress_insert, stage_only
from tests.service.server import ApiServer, auth
from tests.service.sse import Event, order_key, parse_events, stream

log = logging.getLogger(__name__)
TRIALS = 20
# About 4 MB of events: more than loopback socket buffers hold (~1.8 MB measured here).
PROGRESS_LINES = 16000


def events_url(base: str, batch_id: str) -> str:
    return f"{base}/batches/{batch_id}/events"


def full_stream(base: str, batch_id: str) -> list[Event]:
    with httpx.Client() as client:
        return list(stream(client, events_url(base, batch_id), auth()))


def read_until_cut(
    client: httpx.Client, url: str, last_id: str | None, cut_at: int
) -> tuple[list[Event], bool]:
    """Read at most ``cut_at`` body bytes, then drop the connection mid-event if need be.

    Returns the complete events received and whether the server ended the stream itself.
    """
    headers = auth() if last_id is None else {**auth(), "Last-Event-ID": last_id}
    received = b""
    ended = True
    with client.stream("GET", url, headers=headers, timeout=60) as response:
        assert response.status_code == 200, response.read()
        for chunk in response.iter_raw():
            received += chunk
            if len(received) >= cut_at:
                received, ended = received[:cut_at], False
                break
    whole = received.decode("utf-8", errors="ignore").replace("\r\n", "\n")
    complete_part = whole[: whole.rfind("\n\n") + 2] if "\n\n" in whole else ""
    return list(parse_events(iter(complete_part.split("\n")))), ended


def follow_with_disconnects(
    base: str, batch_id: str, rng: random.Random, max_cut: int
) -> list[Event]:
    """Follow the stream to its end, dropping the connection at random byte offsets."""
    seen: list[Event] = []
    with httpx.Client() as client:
        while True:
            last_id = seen[-1].id if seen else None
            events, ended = read_until_cut(
                client, events_url(base, batch_id), last_id, rng.randint(1, max_cut)
            )
            seen.extend(events)
            if ended:
                return seen


def assert_same_sequence(got: list[Event], expected: list[Event]) -> None:
    assert [e.id for e in got] == [e.id for e in expected]
    assert got == expected


def test_replay_of_a_finished_batch_is_typed_ordered_and_ends_with_complete(stack: Stack) -> None:
    events = full_stream(stack.url, stack.batch_id)
    ids = [order_key(e.id or "") for e in events]
    assert ids == sorted(set(ids))
    assert events[0].kind == "state" and events[0].data["state"] == "pending"
    assert events[-1].kind == "complete"
    states = [e.data["state"] for e in events if e.kind == "state"]
    assert states == [
        "pending", "preprocessing", "extracting", "resolving", "validating", "ingesting",
        "complete",
    ]  # fmt: skip
    finished = [
        e.data["stage"] for e in events if e.kind == "stage" and e.data["status"] == "finished"
    ]
    assert finished == [
        "documents", "chunks", "extractions", "resolved_entities", "validated_graph",
        "ingested_graph",
    ]  # fmt: skip
    counts = [e for e in events if e.kind == "entity_count"]
    assert counts and all(e.data["entities"] > 0 for e in counts)


def test_resume_after_random_disconnects_has_no_gap_and_no_duplicate(stack: Stack) -> None:
    expected = full_stream(stack.url, stack.batch_id)
    rng = random.Random(5)
    for _ in range(TRIALS):
        got = follow_with_disconnects(stack.url, stack.batch_id, rng, max_cut=4000)
        assert_same_sequence(got, expected)


def test_live_stream_across_api_restarts_has_no_gap_and_no_duplicate(stack: Stack) -> None:
    documents = [
        *demo_documents(),
        {"id": "live.txt", "text": "Ada Lovelace met Charles Babbage in London."},
    ]
    server = stack.new_server("restarting-api").start()
    rng = random.Random(7)
    seen: list[Event] = []
    try:
        accepted = httpx.post(
            f"{server.url}/batches", json={"documents": documents}, headers=auth()
        )
        batch_id = accepted.json()["batch_id"]
        with httpx.Client() as client:
            ended = False
            restarts = 0
            while not ended:
                last_id = seen[-1].id if seen else None
                events, ended = read_until_cut(
                    client, events_url(server.url, batch_id), last_id, rng.randint(200, 2500)
                )
                seen.extend(events)
                if not ended and restarts < 2 and len(seen) > 4 * (restarts + 1):
                    server.kill()
                    server = ApiServer(server.env, server.log_path, port=server.port).start()
                    restarts += 1
        assert restarts == 2
    finally:
        server.stop()
    assert_same_sequence(seen, full_stream(stack.url, batch_id))
    assert seen[-1].kind == "complete"


def open_stream(client: httpx.Client, url: str) -> httpx.Response:
    return client.send(client.build_request("GET", url, headers=auth()), stream=True)


def test_streams_per_token_are_capped_with_retry_after(stack: Stack) -> None:
    waiting = stage_only(stack.settings, "Nobody starts this batch.").batch_id
    url = events_url(stack.url, waiting)
    with httpx.Client(timeout=30) as client:
        opened = [open_stream(client, url) for _ in range(4)]
        try:
            assert [r.status_code for r in opened] == [200] * 4
            refused = client.get(url, headers=auth())
            assert refused.status_code == 429
            assert refused.json()["error"]["code"] == "too_many_streams"
            assert int(refused.headers["Retry-After"]) > 0
            opened.pop().close()
            deadline = time.monotonic() + 30
            while (again := open_stream(client, url)).status_code == 429:
                again.close()
                assert time.monotonic() < deadline, "a closed stream never gave its slot back"
                time.sleep(0.2)
            opened.append(again)
            assert again.status_code == 200
        finally:
            for response in opened:
                response.close()


def test_frozen_client_is_dropped_and_others_stream_on(stack: Stack) -> None:
    batch_id = stage_only(stack.settings, "A long extraction.").batch_id
    started = time.monotonic()
    long_running_extraction(stack.settings, batch_id, progress_lines=PROGRESS_LINES)
    log.info(f"wrote {PROGRESS_LINES} progress records in {time.monotonic() - started:.1f} s")
    frozen = socket.socket()
    frozen.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)  # before connect: sets the window
    frozen.connect(("127.0.0.1", stack.server.port))
    frozen.sendall(
        f"GET /batches/{batch_id}/events HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {auth()['Authorization'].split()[1]}\r\n\r\n".encode()
    )
    time.sleep(0.5)  # let the server fill the frozen connection's buffers first
    started = time.monotonic()
    others: list[list[Event]] = []

    def follow_to_last_progress() -> None:
        events: list[Event] = []
        with httpx.Client() as client:
            for event in stream(client, events_url(stack.url, batch_id), auth()):
                events.append(event)
                if event.kind == "progress" and event.data["done"] == PROGRESS_LINES:
                    break
        others.append(events)

    readers = [threading.Thread(target=follow_to_last_progress) for _ in range(2)]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join(timeout=120)
    log.info(f"two other streams read {PROGRESS_LINES} events in {time.monotonic() - started:.1f}s")
    assert [len(events) for events in others] == [PROGRESS_LINES, PROGRESS_LINES]
    # The frozen client now reads: it gets what was buffered, then the server's close.
    frozen.settimeout(60)
    received = b""
    deadline = time.monotonic() + 60
    try:
        while chunk := frozen.recv(65536):
            received += chunk
            assert time.monotonic() < deadline, f"never dropped; read {len(received)} bytes"
    except TimeoutError:
        pytest.fail(f"the server never dropped the frozen client ({len(received)} bytes read)")
    finally:
        frozen.close()
    log.info(f"frozen client got {len(received)} bytes before the server dropped it")
    assert received.count(b"event: progress") < PROGRESS_LINES
    assert f'"done":{PROGRESS_LINES}'.encode() not in received


@pytest.mark.parametrize("last_id", ["x", "1.2.3", "-4", "1.x"])
def test_a_malformed_last_event_id_is_refused(stack: Stack, last_id: str) -> None:
    response = httpx.get(
        events_url(stack.url, stack.batch_id), headers={**auth(), "Last-Event-ID": last_id}
    )
    assert response.status_code in (400, 422)
    assert response.json()["error"]["code"] in ("invalid_last_event_id", "invalid_request")


def test_unknown_batch_has_no_stream(stack: Stack) -> None:
    response = httpx.get(events_url(stack.url, "b" + "0" * 16), headers=auth())
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "batch_not_found"


def test_a_record_committed_after_a_higher_one_is_not_lost(stack: Stack) -> None:
    """Two writers: the lower event-log id is committed 1.5 s after the higher one."""
    batch_id = stage_only(stack.settings, "Committed out of order.").batch_id
    run_id = long_running_extraction(stack.settings, batch_id, progress_lines=1)
    engine = engine_for(database_url(stack.settings))
    received: list[Event] = []

    def follow_to_three() -> None:
        with httpx.Client() as client:
            for event in stream(client, events_url(stack.url, batch_id), auth()):
                received.append(event)
                if event.data.get("done") == 3:
                    return

    with engine.connect() as slow:
        transaction = slow.begin()
        low = slow.execute(progress_insert(stack.settings, run_id, 2, 3).returning(sa.text("id")))
        with engine.begin() as fast:
            high = fast.execute(
                progress_insert(stack.settings, run_id, 3, 3).returning(sa.text("id"))
            )
        low_id, high_id = low.scalar_one(), high.scalar_one()
        assert low_id < high_id
        reader = threading.Thread(target=follow_to_three)
        reader.start()
        time.sleep(1.5)  # longer than any settle window or poll: a cursor would have moved on
        assert [e.data["done"] for e in received] == [1]
        transaction.commit()
    reader.join(timeout=60)
    assert [e.data["done"] for e in received] == [1, 2, 3]
    assert [e.id for e in received][1:] == [str(low_id), str(high_id)]
