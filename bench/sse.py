"""SSE fan-out: 100 live subscribers of one batch; latency from event-log record to delivery.

A real platform (embedded PostgreSQL, Valkey, dagster-daemon, a worker, the API) runs one batch of
ecbplus-dev documents submitted through the API. Right after the submission, ``SUBSCRIBERS``
clients (one asyncio process, one connection each) follow the batch's event stream to its end.
Latency is the receipt time minus the event-log record's timestamp (same host, same clock),
over every live delivery (an event recorded before its subscriber connected is a replay and is
counted apart). Then the finished stream is read once more: its ids are the events every
subscriber must have received, in order, with none lost or repeated; the read also gives
replay throughput.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from pydantic import SecretStr

from bench.common import corpus_paths
from bench.recovery import _platform_state
from knowledge_assets.platform.supervisor import Platform

DOCUMENTS = 40
SUBSCRIBERS = 100
TARGET_P95_MS = 200.0
TOKEN = "bench-token-0123456789abcdef"


@dataclass
class Subscriber:
    """What one client received: event ids in order, and each live delivery's latency."""

    connected_at: float = 0.0
    ids: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    replayed: int = 0
    status: int = 0


def run(documents: int = DOCUMENTS, subscribers: int = SUBSCRIBERS) -> dict[str, Any]:
    """Follow one batch with ``subscribers`` clients; latency, losses and replay throughput."""
    files = [("files", (p.name, p.read_bytes(), "text/plain")) for p in corpus_paths(documents)]
    with _platform_state() as settings:
        port = _free_port()
        api = {"api_port": port, "api_token": SecretStr(TOKEN)}
        platform = Platform(settings.model_copy(update=api), services=("daemon", "api", "worker"))
        platform.start()
        try:
            base = f"http://127.0.0.1:{port}"
            _wait_ready(base)
            url = f"{base}/batches/{_submit(base, files)}/events"
            followers = asyncio.run(_follow_all(url, subscribers))
            began = time.perf_counter()
            expected = asyncio.run(_follow_all(url, 1))[0].ids
            replay_s = time.perf_counter() - began
        finally:
            platform.stop()
    figures = _figures(followers, expected)
    figures.update(
        benchmark="sse",
        documents=documents,
        replay_events_per_s=round(len(expected) / replay_s, 1),
        poll_s=settings.api_stream_poll_s,
        gap_timeout_s=settings.api_stream_gap_timeout_s,
        max_streams_per_token=settings.api_max_streams_per_token,
        load_avg_1m=round(os.getloadavg()[0], 2),
        target=f"{subscribers} subscribers: p95 <= {TARGET_P95_MS:.0f} ms, 0 lost",
    )
    return figures


def _figures(followers: list[Subscriber], expected: list[str]) -> dict[str, Any]:
    latencies = sorted(x for f in followers for x in f.latencies)
    lost = sum(len(set(expected) - set(f.ids)) for f in followers)
    wrong = sum(f.ids != expected for f in followers)
    p95 = 1000 * latencies[int(0.95 * (len(latencies) - 1))] if latencies else float("inf")
    return {
        "subscribers": len(followers),
        "refused": sum(f.status != 200 for f in followers),
        "events_expected": len(expected),
        "delivered_min": min(len(f.ids) for f in followers),
        "delivered_max": max(len(f.ids) for f in followers),
        "lost": lost,
        "subscribers_not_exact": wrong,
        "live_deliveries": len(latencies),
        "replayed_deliveries": sum(f.replayed for f in followers),
        "latency_p50_ms": round(1000 * statistics.median(latencies), 1) if latencies else None,
        "latency_p95_ms": round(p95, 1),
        "latency_max_ms": round(1000 * latencies[-1], 1) if latencies else None,
        "met": bool(latencies) and p95 <= TARGET_P95_MS and lost == 0 and wrong == 0,
    }


def _submit(base: str, files: list[Any]) -> str:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    answer = httpx.post(f"{base}/batches", files=files, headers=headers, timeout=300)
    if answer.status_code != 202:
        raise RuntimeError(f"submission refused: {answer.text}")
    return str(answer.json()["batch_id"])


async def _follow_all(url: str, count: int) -> list[Subscriber]:
    limits = httpx.Limits(max_connections=count + 10, max_keepalive_connections=0)
    timeout = httpx.Timeout(600, connect=60)
    async with httpx.AsyncClient(limits=limits, timeout=timeout) as client:
        return list(await asyncio.gather(*(_follow(client, url) for _ in range(count))))


async def _follow(client: httpx.AsyncClient, url: str) -> Subscriber:
    seen = Subscriber()
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with client.stream("GET", url, headers=headers) as response:
        seen.status, seen.connected_at = response.status_code, time.time()
        if response.status_code != 200:
            return seen
        event_id: str | None = None
        async for line in response.aiter_lines():
            if line.startswith("id:"):
                event_id = line[3:].strip()
            elif line.startswith("data:"):
                received = time.time()
                data = json.loads(line[5:])
                seen.ids.append(event_id or "")
                if data["timestamp"] >= seen.connected_at:
                    seen.latencies.append(received - data["timestamp"])
                else:
                    seen.replayed += 1
    return seen


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
