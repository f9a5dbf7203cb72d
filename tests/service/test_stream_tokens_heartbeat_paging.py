"""README claims of the API: stream tokens expire, idle streams get heartbeats, batches page.

One API server on a database of its own, with no daemon: submitted batches stay pending, so
their streams have nothing to say but heartbeats, and the batch list holds only this file's.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from knowledge_assets.db.admin import create_database, drop_database
from knowledge_assets.db.engine import engine_for
from tests.processes import wait_until
from tests.service.server import ApiServer, auth
from tests.service.sse import parse_events

TOKEN_TTL_S = 2
HEARTBEAT_S = 1.0


@pytest.fixture(scope="module")
def quiet(admin_url: str) -> Iterator[ApiServer]:
    root = Path(tempfile.mkdtemp(prefix="kquiet-", dir="/tmp"))
    url = create_database(admin_url)
    env = dict(
        os.environ,
        KNOWLEDGE_HOME=str(root / "home"),
        KNOWLEDGE_DATABASE_URL=url,
        DAGSTER_HOME=str(root / "home" / "dagster"),
        KNOWLEDGE_API_STREAM_TOKEN_TTL_S=str(TOKEN_TTL_S),
        KNOWLEDGE_API_STREAM_HEARTBEAT_S=str(HEARTBEAT_S),
    )
    server = ApiServer(env, root / "logs" / "api.log").start()
    try:
        yield server
    finally:
        server.stop()
        engine_for(url).dispose()
        drop_database(url)
        shutil.rmtree(root, ignore_errors=True)


def submit(server: ApiServer, name: str, text: str) -> str:
    response = httpx.post(
        f"{server.url}/batches",
        json={"documents": [{"id": name, "text": text}]},
        headers=auth(),
        timeout=60,
    )
    assert response.status_code == 202, response.text
    return str(response.json()["batch_id"])


@pytest.fixture(scope="module")
def pending(quiet: ApiServer) -> str:
    """A batch that stays pending: nobody runs it."""
    return submit(quiet, "pending.txt", "Oskar Lind repaired the lighthouse at Vardo.")


def open_status(server: ApiServer, batch_id: str, token: str) -> int:
    """The status an event stream opened with ``token`` answers (the stream is closed at once)."""
    url = f"{server.url}/batches/{batch_id}/events"
    with httpx.stream("GET", url, params={"access_token": token}, timeout=30) as response:
        return response.status_code


def test_a_stream_token_opens_streams_until_its_ttl_then_gets_401(
    quiet: ApiServer, pending: str
) -> None:
    issued_at = time.time()
    issued = httpx.post(f"{quiet.url}/auth/stream-token", headers=auth(), timeout=30)
    assert issued.status_code == 200, issued.text
    token = issued.json()["token"]
    assert issued.json()["expires_in"] == TOKEN_TTL_S
    assert open_status(quiet, pending, token) == 200

    wait_until(lambda: open_status(quiet, pending, token) == 401, TOKEN_TTL_S + 5, every=0.1)
    assert time.time() - issued_at > TOKEN_TTL_S - 1  # expiry is kept in whole seconds
    url = f"{quiet.url}/batches/{pending}/events"
    refused = httpx.get(url, params={"access_token": token}, timeout=30)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "unauthorized"
    assert "expired" in refused.json()["error"]["message"]
    assert refused.headers["WWW-Authenticate"] == "Bearer"
    # Only that token expired: a new one opens the stream again.
    renewed = httpx.post(f"{quiet.url}/auth/stream-token", headers=auth(), timeout=30).json()
    assert open_status(quiet, pending, renewed["token"]) == 200


def test_an_idle_stream_gets_a_heartbeat_comment_every_heartbeat_interval(
    quiet: ApiServer, pending: str
) -> None:
    url = f"{quiet.url}/batches/{pending}/events"
    lines: list[str] = []
    pings: list[float] = []
    # A read that waits more than three intervals for any byte fails the test.
    timeout = httpx.Timeout(30, read=3 * HEARTBEAT_S + 2)
    with httpx.stream("GET", url, headers=auth(), timeout=timeout) as response:
        assert response.status_code == 200
        opened = time.monotonic()
        for line in response.iter_lines():
            lines.append(line)
            if line.startswith(": ping"):
                pings.append(time.monotonic() - opened)
            if len(pings) == 3:
                break
    # The pending batch said what it had to say once; after that, only heartbeats.
    events = list(parse_events(iter(lines)))
    assert [(e.kind, e.data.get("state")) for e in events] == [("state", "pending")]
    assert pings[0] < HEARTBEAT_S + 2
    gaps = [later - earlier for earlier, later in itertools.pairwise(pings)]
    assert all(0.5 * HEARTBEAT_S < gap < HEARTBEAT_S + 2 for gap in gaps), pings


def list_page(server: ApiServer, **params: int) -> httpx.Response:
    return httpx.get(f"{server.url}/batches", params=params, headers=auth(), timeout=60)


def test_batches_page_newest_first_without_overlap_and_bound_the_limit(
    quiet: ApiServer, pending: str
) -> None:
    submitted = [pending]
    for n in range(4):
        submitted.append(submit(quiet, f"page-{n}.txt", f"Page {n} names Agnes Moe of Hamar."))
    newest_first = submitted[::-1]

    pages = []
    for offset in range(0, 6, 2):
        response = list_page(quiet, offset=offset, limit=2)
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["offset"], body["limit"]) == (offset, 2)
        pages.append([item["batch_id"] for item in body["items"]])
    assert pages == [newest_first[0:2], newest_first[2:4], newest_first[4:5]]
    assert list_page(quiet, offset=5, limit=2).json()["items"] == []
    whole = list_page(quiet).json()
    assert (whole["offset"], whole["limit"]) == (0, 20)
    assert [item["batch_id"] for item in whole["items"]] == newest_first
    assert {item["state"] for item in whole["items"]} == {"pending"}

    assert list_page(quiet, limit=100).status_code == 200
    for bad in ({"limit": 0}, {"limit": 101}, {"offset": -1}):
        refused = list_page(quiet, **bad)
        assert refused.status_code == 422, bad
        assert refused.json()["error"]["code"] == "invalid_request"
