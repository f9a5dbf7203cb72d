"""Both paths of a batch, each on a fresh database: launched Dagster runs and the direct pipeline.

The durable side is the real platform: a ``dagster-daemon`` on PostgreSQL, a warm Celery worker
(``knowledge worker``, Valkey as its broker) and the Orchestrator submitting to the queued run
coordinator as the API does. The direct side is the
``ExtractionPipeline`` in a fresh process, as ``knowledge extract`` runs it; the process also
reports how long ``run_paths`` itself took, so a warm-process baseline comes with every trial.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import psutil

from knowledge_assets.db.admin import create_database, drop_database
from knowledge_assets.db.embedded import EmbeddedPostgres
from knowledge_assets.db.engine import engine_for
from knowledge_assets.db.migrate import ensure_migrated
from knowledge_assets.instance.home import open_instance
from knowledge_assets.orchestration.orchestrator import Orchestrator
from knowledge_assets.pipeline.models import DocumentInput
from knowledge_assets.platform.supervisor import Platform
from knowledge_assets.settings import Settings

_DIRECT = """
import json, resource, sys, time
from pathlib import Path
from knowledge_assets.pipeline.pipeline import ExtractionPipeline
pipeline = ExtractionPipeline()
began = time.perf_counter()
result = pipeline.run_paths([Path(p) for p in json.loads(sys.argv[1])])
print(json.dumps({"run_s": time.perf_counter() - began, "chunks": result.chunks,
                  "stages": result.seconds,
                  "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


_BATCH_DATA = """
import gc, json, sys, tracemalloc
from pathlib import Path
import dagster as dg
from knowledge_assets.defs.io_manager import PydanticJsonIOManager
root, partition, assets = Path(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])
io_manager = PydanticJsonIOManager(base_path=str(root))
tracemalloc.start()
sizes = {}
for asset in assets:
    context = dg.build_input_context(asset_key=dg.AssetKey(asset), partition_key=partition)
    for _ in range(2):  # the first load also imports and warms the model classes
        value = None
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        value = io_manager.load_input(context)
        gc.collect()
        held, peak = tracemalloc.get_traced_memory()
    sizes[asset] = {"held_mb": (held - before) / 2**20, "load_peak_mb": (peak - before) / 2**20,
                    "file_mb": (root / asset / f"{partition}.json").stat().st_size / 2**20}
print(json.dumps(sizes))
"""

# What each step of ``extract_batch`` holds: its inputs, then its output last (assets/batch.py).
STEP_DATA = {
    "documents": ("documents",),  # no input but the stored document bytes
    "chunks": ("documents", "chunks"),
    "extractions": ("chunks", "extractions"),
    "resolved_entities": ("documents", "chunks", "extractions", "resolved_entities"),
    "validated_graph": ("resolved_entities", "validated_graph"),
    "ingested_graph": ("documents", "validated_graph", "ingested_graph"),
}


@dataclass(frozen=True)
class LaunchedRun:
    """One launched batch: wall time from submit to Complete, and its run worker's memory.

    ``rss_by_step_mb`` is the worker's largest resident size seen during each step;
    ``batch_data_mb`` the size of each asset value of the batch (see ``measure_batch_data``).
    """

    seconds: float
    peak_rss_mb: float
    state: str
    phases: dict[str, float]
    rss_by_step_mb: dict[str, float] = field(default_factory=dict)
    batch_data_mb: dict[str, dict[str, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class DirectRun:
    """One direct run: the whole process, ``run_paths`` alone (model loaded), its peak RSS."""

    seconds: float
    run_seconds: float
    chunks: int
    stages: dict[str, float]
    peak_rss_mb: float


# Trials by batch size, (direct, launched) pairs, for benchmarks that measure the same runs.
RECORDED: dict[int, list[tuple[DirectRun, LaunchedRun]]] = {}


@contextmanager
def database_server() -> Iterator[str]:
    """An admin URL: ``KNOWLEDGE_TEST_ADMIN_URL`` if set, else a throw-away embedded server."""
    external = os.environ.get("KNOWLEDGE_TEST_ADMIN_URL")
    if external:
        yield external
        return
    root = Path(tempfile.mkdtemp(prefix="kab-", dir="/tmp"))
    server = EmbeddedPostgres(root / "pg")
    try:
        yield server.start()
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def fresh_database(admin_url: str) -> Iterator[str]:
    """A new, empty database: a cold extraction cache and graph."""
    url = create_database(admin_url, prefix="ka_bench")
    try:
        yield url
    finally:
        engine_for(url).dispose()
        drop_database(url)


def run_direct(admin_url: str, paths: Sequence[Path]) -> DirectRun:
    """The direct pipeline on ``paths`` in a fresh process, on a fresh (migrated) database."""
    with fresh_database(admin_url) as url, tempfile.TemporaryDirectory() as home:
        ensure_migrated(engine_for(url))
        env = dict(os.environ, KNOWLEDGE_HOME=home, KNOWLEDGE_DATABASE_URL=url)
        argv = [sys.executable, "-c", _DIRECT, json.dumps([str(p) for p in paths])]
        began = time.perf_counter()
        done = subprocess.run(argv, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - began
    if done.returncode != 0:
        raise RuntimeError(f"direct pipeline failed ({done.returncode}): {done.stderr[-3000:]}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    peak = round(figures["peak_rss_kb"] / 1024, 1)
    return DirectRun(seconds, figures["run_s"], figures["chunks"], figures["stages"], peak)


def run_launched(
    admin_url: str, items: Sequence[DocumentInput], *, measure_data: bool = True
) -> LaunchedRun:
    """Submit ``items`` to a freshly started platform (fresh database) and wait for Complete.

    With ``measure_data``, the batch's stored asset values are measured afterwards (outside the
    timed part) while the platform's storage still holds them.
    """
    with fresh_database(admin_url) as url, _platform(url) as (platform, orchestrator, instance):
        settings = orchestrator.settings
        worker = platform.children["worker-1"].pid
        with _PeakRss(worker) as peak:
            began = time.time()
            batch_id = orchestrator.submit(items).batch_id
            # Polled gently (polling competes for the two cores); the end is read from the record.
            status = orchestrator.wait(batch_id, timeout_s=1800, poll_s=0.5)
        (run_id,) = orchestrator.run_ids(batch_id)
        phases = _phases(instance, run_id, began)
        by_step = _rss_by_step(instance, run_id, peak.samples)
        data = measure_batch_data(settings.storage_dir / "assets", batch_id) if measure_data else {}
        return LaunchedRun(phases["total"], peak.mb, str(status.state), phases, by_step, data)


def measure_batch_data(root: Path, partition: str) -> dict[str, dict[str, float]]:
    """Each asset value of a batch as the run worker holds it, loaded in a fresh process.

    Loaded through the IO manager, as the run worker loads its inputs; ``held_mb`` is what the
    value occupies once loaded (tracemalloc, after a warm-up load), ``load_peak_mb`` the most
    memory loading it needed, ``file_mb`` the stored JSON.
    """
    assets = json.dumps(list(STEP_DATA))
    argv = [sys.executable, "-c", _BATCH_DATA, str(root), partition, assets]
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"measuring the batch's data failed: {done.stderr[-3000:]}")
    sizes: dict[str, dict[str, float]] = json.loads(done.stdout.strip().splitlines()[-1])
    return {asset: {k: round(v, 2) for k, v in figures.items()} for asset, figures in sizes.items()}


def _rss_by_step(
    instance: dg.DagsterInstance, run_id: str, samples: list[tuple[float, int, int]]
) -> dict[str, float]:
    """The worker's largest resident size while each step ran (from its start to end event).

    Samples come every 0.1 s and miss short spikes, but the high-water mark (VmHWM) misses
    nothing: when it rose during a step, that step reached it.
    """
    spans: dict[str, list[float]] = {}
    for record in instance.get_records_for_run(run_id, limit=100000).records:
        event = record.event_log_entry.dagster_event
        if event is None or event.step_key is None:
            continue
        if event.event_type_value in ("STEP_START", "STEP_SUCCESS", "STEP_FAILURE"):
            spans.setdefault(event.step_key, []).append(record.timestamp)
    return {
        step: round(_step_peak_kb(samples, min(ts), max(ts)) / 1024, 1)
        for step, ts in spans.items()
    }


def _step_peak_kb(samples: list[tuple[float, int, int]], began: float, ended: float) -> float:
    before = max((high for t, high, _ in samples if t < began), default=0)
    during = [(high, now) for t, high, now in samples if began <= t <= ended + 0.2]
    if not during:
        return 0.0
    peak = max(now for _, now in during)
    if during[-1][0] > before:
        peak = max(peak, during[-1][0])
    return float(peak)


_PHASE_EVENTS = {
    "submit": "PIPELINE_ENQUEUED",
    "queue": "PIPELINE_STARTING",
    "worker_start": "PIPELINE_START",
    "steps": "PIPELINE_SUCCESS",
}


def _phases(instance: dg.DagsterInstance, run_id: str, began: float) -> dict[str, float]:
    """Seconds from one run event to the next: where the launched side spends its time."""
    stamps = {
        record.event_log_entry.dagster_event.event_type_value: record.timestamp
        for record in instance.get_records_for_run(run_id, limit=100000).records
        if record.event_log_entry.dagster_event is not None
    }
    phases, previous = {}, began
    for phase, event in _PHASE_EVENTS.items():
        stamp = stamps.get(event, previous)
        phases[phase] = round(stamp - previous, 3)
        previous = stamp
    phases["total"] = previous - began
    return phases


@contextmanager
def _platform(url: str) -> Iterator[tuple[Platform, Orchestrator, dg.DagsterInstance]]:
    with tempfile.TemporaryDirectory(prefix="kab-home-") as home:
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
                yield platform, orchestrator, instance
        finally:
            platform.stop()


def await_daemons(instance: dg.DagsterInstance, timeout_s: float = 120) -> None:
    """Wait for every daemon's first heartbeat since now.

    Submitting before the daemon's run queue loop is alive would time the daemon's start-up.
    """
    since = time.time()
    required = set(instance.get_required_daemon_types())
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        beats = instance.get_daemon_heartbeats()
        if all(k in beats and beats[k].timestamp >= since for k in required):
            return
        time.sleep(0.2)
    raise TimeoutError(f"dagster-daemon not healthy after {timeout_s:.0f} s")


def await_workers(home: Path, count: int = 1, timeout_s: float = 180) -> None:
    """Until ``count`` local workers of the platform under ``home`` are warm and consuming."""
    deadline = time.monotonic() + timeout_s
    logs = [home / "logs" / f"worker-{n}.log" for n in range(1, count + 1)]
    while time.monotonic() < deadline:
        if all(p.exists() and " ready." in p.read_text(errors="replace") for p in logs):
            return
        time.sleep(0.2)
    raise TimeoutError(f"workers not ready after {timeout_s:.0f} s: {logs}")


class _PeakRss:
    """Follows the run workers (the worker's pool processes): the largest VmHWM seen.

    ``samples`` keeps (wall time, VmHWM, VmRSS in KiB) of every look, to tell which step set
    the peak.
    """

    def __init__(self, worker_pid: int, every_s: float = 0.1) -> None:
        self.worker = psutil.Process(worker_pid)
        self.every_s = every_s
        self.peak_kb = 0
        self.samples: list[tuple[float, int, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, daemon=True)

    @property
    def mb(self) -> float:
        """The peak in MiB."""
        return round(self.peak_kb / 1024, 1)

    def __enter__(self) -> _PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _follow(self) -> None:
        while not self._stop.wait(self.every_s):
            for worker in self._workers():
                high, now = _memory_kb(worker.pid)
                self.peak_kb = max(self.peak_kb, high)
                self.samples.append((time.time(), high, now))

    def _workers(self) -> list[psutil.Process]:
        try:
            return list(self.worker.children(recursive=True))
        except psutil.Error:
            return []


def _memory_kb(pid: int) -> tuple[int, int]:
    """VmHWM (peak resident size) and VmRSS (resident size now) of ``pid``, in KiB."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0, 0
    found = {"VmHWM:": 0, "VmRSS:": 0}
    for line in status.splitlines():
        name = line.split(maxsplit=1)[0] if line else ""
        if name in found:
            found[name] = int(line.split()[1])
    return found["VmHWM:"], found["VmRSS:"]
