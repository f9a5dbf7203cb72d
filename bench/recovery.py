"""Recovery: kill -9 mid-extraction, then time until the resumed run works and how much is redone.

Two crashes on the real platform pieces (embedded PostgreSQL, Valkey, dagster-daemon, a warm
Celery worker, the offline extractor on ecbplus-dev documents): (1) the process executing the run
(a pool child of the worker), whose task the result backend then records as ended, so run
monitoring fails the run at once and the retry follows; (2) every platform process at once (daemon,
code server, worker and its pool), then the platform started again, where the run's silent lease
fails it and the retry follows.

"Redone" counts chunks sent to the extractor again although their result was already
checkpointed at the kill (the design says zero). "Lost" counts chunks the killed run had reported
extracted (its last progress line, at most a second old, so a lower bound) but not yet
checkpointed: the work the crash threw away, at most one checkpoint group.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import psutil
import sqlalchemy as sa

from bench.common import corpus_paths
from knowledge_assets.db import tables as t
from knowledge_assets.db.embedded import EmbeddedPostgres
from knowledge_assets.db.engine import database_url, get_engine
from knowledge_assets.instance.home import open_instance
from knowledge_assets.instance.leases import LeaseStore
from knowledge_assets.orchestration.orchestrator import Orchestrator
from knowledge_assets.orchestration.state import BatchState
from knowledge_assets.pipeline.documents import read_paths
from knowledge_assets.platform.supervisor import Platform
from knowledge_assets.settings import Settings

DOCUMENTS = 200
KILL_AT = 0.4  # fraction of the chunks checkpointed when the kill lands


def run(documents: int = DOCUMENTS) -> dict[str, Any]:
    """Both crashes on fresh state; seconds to recover and chunks redone for each."""
    items, _ = read_paths(corpus_paths(documents))
    worker = _trial(items, kill_everything=False)
    platform = _trial(items, kill_everything=True)
    return {
        "benchmark": "recovery",
        "documents": documents,
        "chunks": worker["chunks"],
        "worker_kill_to_resumed_s": worker["to_resumed_s"],
        "worker_kill_to_complete_s": worker["to_complete_s"],
        "worker_kill_redone_chunks": worker["redone"],
        "worker_kill_lost_chunks": worker["lost"],
        "platform_kill_to_resumed_s": platform["to_resumed_s"],
        "platform_kill_to_complete_s": platform["to_complete_s"],
        "platform_kill_redone_chunks": platform["redone"],
        "platform_kill_lost_chunks": platform["lost"],
        "target": "resumed within 60 s; 0 checkpointed chunks redone; lost <= 64 (one group)",
    }


@contextlib.contextmanager
def _platform_state() -> Iterator[Settings]:
    root = Path(tempfile.mkdtemp(prefix="kbr-", dir="/tmp"))
    server = EmbeddedPostgres(root / "pg")
    saved = dict(os.environ)
    try:
        os.environ.update(KNOWLEDGE_HOME=str(root / "home"), KNOWLEDGE_DATABASE_URL=server.start())
        os.environ["DAGSTER_HOME"] = str(root / "home" / "dagster")
        yield Settings()
    finally:
        os.environ.clear()
        os.environ.update(saved)
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def _trial(items: list[Any], *, kill_everything: bool) -> dict[str, Any]:
    with (
        _platform_state() as settings,
        Orchestrator.for_settings(settings) as orchestrator,
        open_instance(settings, database_url(settings)) as instance,
    ):
        engine = get_engine(settings)
        daemon = Platform(settings, services=("daemon", "worker"))
        daemon.start()
        try:
            batch_id = orchestrator.submit(items).batch_id
            chunks = _wait(lambda: orchestrator.poll(batch_id).progress.chunks_total, 300)
            _wait(lambda: _cached(engine) >= KILL_AT * chunks, 600, every=0.05)
            reported = orchestrator.poll(batch_id).progress.chunks_done
            killed_at = time.monotonic()
            if kill_everything:
                _kill_tree(daemon)
                daemon.start()
            else:
                _kill_worker(engine, orchestrator, batch_id)
            checkpointed = _cached(engine)
            reported = max(reported, orchestrator.poll(batch_id).progress.chunks_done)
            _wait(lambda: _resumed(instance, orchestrator, batch_id), 300, every=0.1)
            to_resumed = time.monotonic() - killed_at
            done = orchestrator.wait(batch_id, timeout_s=900, poll_s=0.2)
            to_complete = time.monotonic() - killed_at
            assert done.state == BatchState.COMPLETE, done
            calls = _retry_calls(instance, done.runs[-1])
            return {
                "chunks": chunks,
                "to_resumed_s": round(to_resumed, 2),
                "to_complete_s": round(to_complete, 2),
                "redone": calls - (chunks - checkpointed),
                "lost": max(0, reported - checkpointed),
            }
        finally:
            daemon.stop()


def _cached(engine: sa.Engine) -> int:
    with engine.connect() as connection:
        return int(
            connection.execute(
                sa.select(sa.func.count()).select_from(t.extraction_cache)
            ).scalar_one()
        )


def _kill_worker(engine: sa.Engine, orchestrator: Orchestrator, batch_id: str) -> None:
    run_id = orchestrator.run_ids(batch_id)[-1]
    lease = LeaseStore(engine).get(run_id)
    assert lease is not None, "no worker holds the run"
    os.kill(lease.pid, signal.SIGKILL)


def _kill_tree(platform: Platform) -> None:
    victims: list[psutil.Process] = []
    for child in platform.children.values():
        with contextlib.suppress(psutil.NoSuchProcess):
            process = psutil.Process(child.pid)
            victims += [process, *process.children(recursive=True)]
    for victim in victims:
        with contextlib.suppress(psutil.NoSuchProcess):
            victim.kill()
    psutil.wait_procs(victims, timeout=10)
    for child in platform.children.values():
        child.wait()


def _resumed(instance: dg.DagsterInstance, orchestrator: Orchestrator, batch_id: str) -> bool:
    """A newer run than the killed one has started working."""
    runs = orchestrator.run_ids(batch_id)
    if len(runs) < 2:
        return False
    run = instance.get_run_by_id(runs[-1])
    return run is not None and run.status.value in ("STARTED", "SUCCESS")


def _retry_calls(instance: dg.DagsterInstance, run_id: str) -> int:
    """Extractor calls the last run made, from its ``extractions`` materialization."""
    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
    ).records
    for record in records:
        event = record.event_log_entry.dagster_event
        materialization = event.step_materialization_data.materialization if event else None
        if materialization is not None and materialization.asset_key == dg.AssetKey("extractions"):
            return int(materialization.metadata["extractor_calls"].value)  # type: ignore[arg-type]
    raise AssertionError("the resumed run did not materialise extractions")


def _wait(predicate: Callable[[], Any], timeout: float, every: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError(f"benchmark condition not met within {timeout:.0f} s")
