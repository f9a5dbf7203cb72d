"""SSE delivery: how long after Dagster records an event does a live client receive it?

A real platform (embedded PostgreSQL, dagster-daemon, the API process) runs one batch of
ecbplus-dev documents submitted through the API while a client follows its event stream. Latency
is the receipt time minus the record's timestamp (same host, same clock); it includes the
settle window (KNOWLEDGE_API_STREAM_SETTLE_S) and the poll interval. Then the finished stream is
replayed in full to measure replay throughput.
"""

from __future__ import annotations

import json
import socket
import statistics
import time
from typing import Any

import httpx
from pydantic import SecretStr

from bench.common import corpus_paths
from bench.recovery import _platform_state
from knowledge_assets.platform import Platform

DOCUMENTS = 40
TOKEN = "bench-token-0123456789abcdef"


def run(documents: int = DOCUMENTS) -> dict[str, Any]:
    """One live follow and one replay; latency median/p95/max and replay events per second."""
    files = [("files", (p.name, p.read_bytes(), "text/plain")) for p in corpus_paths(documents)]
    with _platform_state() as settings:
        port = _free_port()
        api = {"api_port": port, "api_token": SecretStr(TOKEN)}
        platform = Platform(settings.model_copy(update=api), services=("daemon", "api"))
        platform.start()
        try:
            base = f"http://127.0.0.1:{port}"
            _wait_ready(base)
            headers = {"Authorization": f"Bearer {TOKEN}"}
            answer = httpx.post(f"{base}/batches", files=files, headers=headers, timeout=300)
            batch = answer.json()
            if answer.status_code != 202:
                raise RuntimeError(f"submission refused: {batch}")
            latencies, _ = _follow(f"{base}/batches/{batch['batch_id']}/events", headers)
            began = time.perf_counter()
            _, replayed = _follow(f"{base}/batches/{batch['batch_id']}/events", headers)
            replay_s = time.perf_counter() - began
        finally:
            platform.stop()
    latencies.sort()
    return {
        "benchmark": "sse",
        "documents": documents,
        "events": replayed,
        "latency_median_ms": round(1000 * statistics.median(latencies), 1),
        "latency_p95_ms": round(1000 * latencies[int(0.95 * (len(latencies) - 1))], 1),
        "latency_max_ms": round(1000 * latencies[-1], 1),
        "replay_events_per_s": round(replayed / replay_s, 1),
        "settle_s": settings.api_stream_settle_s,
        "poll_s": settings.api_stream_poll_s,
    }


def _follow(url: str, headers: dict[str, str]) -> tuple[list[float], int]:
    latencies: list[float] = []
    with httpx.stream("GET", url, headers=headers, timeout=600) as response:
        for line in response.iter_lines():
            if line.startswith("data:"):
                data = json.loads(line[5:])
                latencies.append(time.time() - data["timestamp"])
                if data.get("kind") == "complete":
                    break
    return latencies, len(latencies)


def _wait_ready(base: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/readyz", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError("the API did not become ready")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
