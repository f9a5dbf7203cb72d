"""Hostile requests cost the API bounded time and memory, and never a 500 (issue 16)."""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil
import pytest

from knowledge_assets.db.admin import create_database, drop_database
from knowledge_assets.db.engine import engine_for
from tests.hostile import blank_node_rings, subclass_chain
from tests.service.conftest import _environment
from tests.service.server import TOKEN, ApiServer, auth


@pytest.fixture(scope="module")
def roomy(admin_url: str) -> Iterator[ApiServer]:
    """An API with the default upload limits (50 MB, 1,000 documents) and no daemon."""
    root = Path(tempfile.mkdtemp(prefix="kroomy-", dir="/tmp"))
    url = create_database(admin_url)
    env = _environment(root, url)
    del env["KNOWLEDGE_API_MAX_UPLOAD_BYTES"]
    server = ApiServer(env, root / "logs" / "api.log").start()
    try:
        yield server
    finally:
        server.stop()
        engine_for(url).dispose()
        drop_database(url)
        shutil.rmtree(root, ignore_errors=True)


_PROBE = """
import sys, time, httpx
url, latencies = sys.argv[1], []
with httpx.Client(timeout=60) as client:
    while not sys.stdin.closed:
        started = time.monotonic()
        assert client.get(url).status_code == 200
        latencies.append(time.monotonic() - started)
        import select
        if select.select([sys.stdin], [], [], 0.05)[0]:
            break
print(" ".join(f"{x:.4f}" for x in latencies))
"""


class HealthProbe:
    """Times ``GET /healthz`` every 50 ms while a test does something hostile.

    From a process of its own: in the test's process, the GIL held by the test's own client
    threads would be measured too.
    """

    def __init__(self, server: ApiServer) -> None:
        self.server = server
        self.latencies: list[float] = []
        self._process: subprocess.Popen[str] | None = None

    def __enter__(self) -> HealthProbe:
        self._process = subprocess.Popen(
            [sys.executable, "-c", _PROBE, f"{self.server.url}/healthz"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        time.sleep(0.5)  # the probe's interpreter is up before the hostile part starts
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._process is not None
        output, _ = self._process.communicate("stop\n", timeout=60)
        self.latencies = [float(x) for x in output.split()]


class RssPeak:
    """The highest resident memory of a process, sampled every 20 ms in a thread."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.baseline = self.process.memory_info().rss
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RssPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            self._stop.wait(0.02)

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.baseline) / 1e6


def submit_ontology(
    server: ApiServer, ontology: str, client: httpx.Client | None = None
) -> httpx.Response:
    body = {"documents": [{"id": "a.txt", "text": "Ada Lovelace met Charles Babbage."}]}
    post = client.post if client is not None else httpx.post
    return post(
        f"{server.url}/batches", json={**body, "ontology": ontology}, headers=auth(), timeout=120
    )


def test_malformed_stream_tokens_are_401_not_500(bare: ApiServer) -> None:
    url = f"{bare.url}/batches/b0123456789abcdef/events"
    for token in ("².x", "9" * 5000 + ".x", "١٢٣.x", "-5.x", " 12.x", "1" * 40 + ".x"):
        response = httpx.get(url, params={"access_token": token})
        assert response.status_code == 401, (token[:20], response.text[:300])
        assert response.json()["error"]["code"] == "unauthorized"
    raw = httpx.get(f"{url}?access_token=%C2%B2.x")
    assert raw.status_code == 401, raw.text[:300]


def test_a_blank_node_bomb_is_refused_within_a_second_while_healthz_stays_fast(
    bare: ApiServer,
) -> None:
    bomb = blank_node_rings(8, 4)
    assert len(bomb) < 2000
    with HealthProbe(bare) as probe:
        started = time.monotonic()
        response = submit_ontology(bare, bomb)
        elapsed = time.monotonic() - started
        # One shared client: a client per request (an SSL context each) would load the machine
        # from the test's side and be measured as the API's latency.
        with httpx.Client() as client, ThreadPoolExecutor(40) as pool:
            answers = list(pool.map(lambda _: submit_ontology(bare, bomb, client), range(40)))
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "ontology_mismatch"
    assert elapsed < 1.0, f"refused after {elapsed:.2f} s"
    assert {a.status_code for a in answers} == {422}
    assert probe.latencies, "no /healthz answer while the ontologies were checked"
    slowest = sorted(probe.latencies)[-5:]
    assert max(probe.latencies) < 0.1, f"/healthz took up to {slowest} s"


def test_a_3000_deep_subclass_chain_gets_a_clear_422(bare: ApiServer) -> None:
    response = submit_ontology(bare, subclass_chain(3000))
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_ontology"
    assert "deeper than 128" in error["message"]


def test_an_ontology_over_the_size_limit_is_413_at_once(roomy: ApiServer) -> None:
    huge = "# padding\n" * 2_000_000  # 20 MB of comments: valid Turtle, far over the limit
    started = time.monotonic()
    response = submit_ontology(roomy, huge)
    assert response.status_code == 413, response.text[:300]
    assert response.json()["error"]["code"] == "ontology_too_large"
    assert time.monotonic() - started < 5


def many_documents_body(target_bytes: int) -> bytes:
    """A JSON batch of tiny documents, ``target_bytes`` long (1.8 million at 49 MB)."""
    one = b'{"id":"d","text":"x"},'
    count = (target_bytes - 20) // len(one)
    return b'{"documents":[' + one * (count - 1) + one[:-1] + b"]}"


def post_raw(server: ApiServer, body: bytes) -> bytes:
    """POST ``body`` over a raw socket, reading the answer even if it comes before the end."""
    head = (
        "POST /batches HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {TOKEN}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    answer = bytearray()
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as connection:

        def send() -> None:
            # The server may answer and close before the end: that is the point.
            with contextlib.suppress(OSError):
                connection.sendall(head + body)

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        while True:
            chunk = connection.recv(65536)
            if not chunk:
                break
            answer += chunk
            if b"\r\n\r\n" in answer and answer.endswith(b"}"):
                break
        sender.join(timeout=60)
    return bytes(answer)


def test_a_49_mb_body_of_1_8_million_documents_is_413_with_little_memory(
    roomy: ApiServer,
) -> None:
    body = many_documents_body(49_000_000)
    assert body.count(b'"id"') > 1_800_000
    assert roomy.process is not None
    with RssPeak(roomy.process.pid) as memory, HealthProbe(roomy) as probe:
        started = time.monotonic()
        answer = post_raw(roomy, body)
        elapsed = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 413"), answer[:300]
    error = json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]
    assert error["code"] == "too_many_documents"
    assert memory.growth_mb < 100, f"API memory grew {memory.growth_mb:.0f} MB"
    assert elapsed < 5, f"answered after {elapsed:.1f} s"
    assert statistics.median(probe.latencies) < 0.1
    assert max(probe.latencies) < 0.5, f"/healthz stalled {max(probe.latencies):.2f} s"


def test_a_body_of_valid_documents_under_the_limits_is_still_accepted(roomy: ApiServer) -> None:
    documents = [{"id": f"n{i}.txt", "text": f"Note {i} on Lisbon."} for i in range(1000)]
    response = httpx.post(
        f"{roomy.url}/batches", json={"documents": documents}, headers=auth(), timeout=120
    )
    assert response.status_code == 202, response.text[:300]
    too_many = [*documents, {"id": "one-more.txt", "text": "x"}]
    response = httpx.post(
        f"{roomy.url}/batches", json={"documents": too_many}, headers=auth(), timeout=120
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_many_documents"


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (b'{"documents": []}', "documents"),
        (b'{"documents": [{"id": "a"}]}', "documents.0.text"),
        (b'{"documents": [{"id": "a", "text": "x", "extra": 1}]}', "extra"),
        (b'{"documents": [{"id": "a", "text": "x"}], "other": 1}', "other"),
        (b'{"documents": {"id": "a"}}', "documents"),
        (b"[1, 2]", "body"),
        (b'{"documents": [' + b"[" * 10_000 + b"]" * 10_000 + b"]}", "documents"),
        (b'{"documents": [{"id": "a", "text": "x"}]', "JSON"),
    ],
)
def test_malformed_json_bodies_are_422_with_where(bare: ApiServer, body: bytes, where: str) -> None:
    response = httpx.post(
        f"{bare.url}/batches",
        content=body,
        headers={**auth(), "Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text[:300]
    assert where in response.json()["error"]["message"]
