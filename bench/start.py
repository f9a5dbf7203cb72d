"""Run start latency: how long a warm worker takes from the run's dequeue to its RUN_START.

A platform with one warm worker (embedded PostgreSQL, Valkey, dagster-daemon, ``knowledge worker``
with concurrency 3) runs one-document batches one after another, each submitted while nothing
else runs, so the figure is a warm start, not queueing behind another run. Times are Dagster's own
event timestamps: the daemon records RUN_STARTING when it dequeues a run and hands it to the
launcher (Dagster 1.13 writes no RUN_DEQUEUED), the worker RUN_START when the run begins.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import dagster as dg

from bench.common import corpus_paths
from bench.launched import await_daemons, await_workers, database_server, fresh_database
from knowledge_assets.instance.home import open_instance
from knowledge_assets.orchestration.orchestrator import Orchestrator
from knowledge_assets.pipeline.models import DocumentInput
from knowledge_assets.platform.supervisor import Platform
from knowledge_assets.settings import Settings

RUNS = 10
TARGET_S = 0.5
_EVENTS = {
    "enqueued": "PIPELINE_ENQUEUED",
    "dequeued": "PIPELINE_STARTING",
    "forwarded": "ENGINE_EVENT",  # "Celery task has been forwarded to the broker."
    "start": "PIPELINE_START",
}


def run(runs: int = RUNS) -> dict[str, Any]:
    """Time ``runs`` warm starts (after one run that warms the pool child up)."""
    paths = corpus_paths(runs + 1)
    rows: list[dict[str, float]] = []
    with (
        database_server() as admin,
        fresh_database(admin) as url,
        tempfile.TemporaryDirectory(prefix="kbs-home-") as home,
    ):
        settings = Settings(home=Path(home), database_url=url)
        platform = Platform(settings, services=("daemon", "worker"))
        platform.start()
        try:
            with (
                Orchestrator.for_settings(settings) as orchestrator,
                open_instance(settings, url) as instance,
            ):
                await_daemons(instance)
                await_workers(settings.home)
                for index, path in enumerate(paths):
                    item = DocumentInput(name=path.name, data=path.read_bytes())
                    batch_id = orchestrator.submit([item]).batch_id
                    orchestrator.wait(batch_id, timeout_s=300, poll_s=0.2)
                    _await_idle(instance)
                    if index:
                        (run_id,) = orchestrator.run_ids(batch_id)
                        rows.append(_latencies(instance, run_id))
        finally:
            platform.stop()
    return _figures(rows)


def _figures(rows: list[dict[str, float]]) -> dict[str, Any]:
    def median(key: str) -> float:
        return round(statistics.median(r[key] for r in rows), 3)

    starts = sorted(r["dequeue_to_start_s"] for r in rows)
    p90 = starts[min(len(starts) - 1, int(0.9 * len(starts)))]
    return {
        "benchmark": "start",
        "runs": len(rows),
        "dequeue_to_start_s_median": median("dequeue_to_start_s"),
        "dequeue_to_start_s_p90": round(p90, 3),
        "dequeue_to_forwarded_s_median": median("dequeue_to_forwarded_s"),
        "forwarded_to_start_s_median": median("forwarded_to_start_s"),
        "queue_s_median": median("queue_s"),
        "submit_to_start_s_median": median("submit_to_start_s"),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "target": f"dequeue -> RUN_START median <= {TARGET_S} s (fork server: 0.2-0.6 s)",
        "met": median("dequeue_to_start_s") <= TARGET_S,
    }


def _latencies(instance: dg.DagsterInstance, run_id: str) -> dict[str, float]:
    stamps: dict[str, float] = {}
    for record in instance.get_records_for_run(run_id, limit=1000).records:
        event = record.event_log_entry.dagster_event
        if event is None:
            continue
        name = event.event_type_value
        if name == "ENGINE_EVENT" and "forwarded to the broker" not in (event.message or ""):
            continue
        stamps.setdefault(name, record.event_log_entry.timestamp)
    at = {key: stamps[name] for key, name in _EVENTS.items()}
    return {
        "queue_s": at["dequeued"] - at["enqueued"],
        "dequeue_to_start_s": at["start"] - at["dequeued"],
        "dequeue_to_forwarded_s": at["forwarded"] - at["dequeued"],
        "forwarded_to_start_s": at["start"] - at["forwarded"],
        "submit_to_start_s": at["start"] - at["enqueued"],
    }


def _await_idle(instance: dg.DagsterInstance, timeout_s: float = 120) -> None:
    """Until no run (the registry's included) is queued or running."""
    active = [
        dg.DagsterRunStatus.QUEUED,
        dg.DagsterRunStatus.NOT_STARTED,
        dg.DagsterRunStatus.STARTING,
        dg.DagsterRunStatus.STARTED,
    ]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not instance.get_runs(dg.RunsFilter(statuses=active), limit=1):
            return
        time.sleep(0.2)
    raise TimeoutError("runs still active")
