"""A Celery worker that hosts Dagster runs warm: ``knowledge worker`` runs ``serve``.

The worker's main process imports Dagster and calls the code location's warm-up hook (dagster.yaml
names it: ``run_launcher.config.preload``, which imports the definitions and loads the model)
before Celery forks its prefork pool, so every pool child starts warm, including one forked later
to replace a child that a cancel or a crash took. Each child keeps one ``DagsterInstance`` and one
lease store for its whole life, built after the fork (sockets are never shared across it).

The task is registered under dagster-celery's name and argument (``execute_job``,
``execute_job_args_packed``), so the daemon's side is ``CeleryRunLauncher``'s own ``launch_run``.
Before executing a run the task takes the run's lease and renews it while the run executes
(``leases.py``); a run whose lease another task holds is never executed a second time.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import logging
import os
import signal
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml
from celery import Celery, signals
from dagster import DagsterInstance
from dagster_celery.config import TASK_EXECUTE_JOB_NAME
from dagster_celery.make_app import make_app

from knowledge_assets.instance.celery_settings import celery_settings
from knowledge_assets.instance.dagster_internals import (
    execute_run,
    import_run_execution,
    run_id_of_task,
)
from knowledge_assets.instance.leases import LeaseKeeper, LeaseStore
from knowledge_assets.instance.queues import QUEUE_OFFLINE

__all__ = ["preload_hook", "serve", "worker_app"]

_log = logging.getLogger(__name__)


def worker_app(broker_url: str) -> Celery:
    """The same Celery app as the run launcher's, with the run task registered."""
    app = make_app(
        app_args={
            "broker": broker_url,
            "backend": broker_url,
            "include": [],
            "config_source": celery_settings(),
            "task_default_queue": QUEUE_OFFLINE,
        }
    )

    @app.task(bind=True, name=TASK_EXECUTE_JOB_NAME, track_started=True)
    def execute_job(task: Any, execute_job_args_packed: Any) -> int:
        """Execute one Dagster run in this warm pool child, under the run's lease."""
        return _execute(
            task.request.id, task.request.hostname, run_id_of_task(execute_job_args_packed)
        )

    return app


def preload_hook(dagster_home: Path) -> str | None:
    """The warm-up hook dagster.yaml names for run hosting (``module:function``), if any."""
    config = yaml.safe_load((dagster_home / "dagster.yaml").read_text(encoding="utf-8")) or {}
    launcher = config.get("run_launcher", {}).get("config") or {}
    hook = launcher.get("preload")
    return str(hook) if hook else None


def serve(
    broker_url: str,
    *,
    name: str,
    queues: Sequence[str],
    concurrency: int,
    preload: str | None,
    loglevel: str = "WARNING",
) -> None:
    """Serve runs from ``queues`` until SIGTERM (a warm shutdown: running runs finish first)."""
    app = worker_app(broker_url)
    _warm_up.hook = preload
    signals.worker_init.connect(_warm_up, weak=False)
    signals.worker_process_init.connect(_child_started, weak=False)
    signals.worker_process_shutdown.connect(_child_stopping, weak=False)
    signals.worker_ready.connect(_ready, weak=False)
    app.worker_main(
        [
            "worker",
            f"--hostname={name}",
            f"--queues={','.join(queues)}",
            f"--concurrency={concurrency}",
            "--pool=prefork",
            "--without-gossip",
            "--without-mingle",
            f"--loglevel={loglevel}",
        ]
    )


class _WarmUp:
    """``worker_init`` receiver: runs in the main process, before the pool forks."""

    hook: str | None = None

    def __call__(self, **_: Any) -> None:
        began = time.perf_counter()
        import_run_execution()
        if self.hook:
            module_name, _sep, function = self.hook.partition(":")
            getattr(importlib.import_module(module_name), function)()
        gc.collect()
        gc.freeze()  # the warm heap stays out of the collector: fewer copy-on-write faults
        _log.warning("warm in %.2f s (pid %s)", time.perf_counter() - began, os.getpid())


_warm_up = _WarmUp()

# This pool child's instance and lease store, built after the fork.
_child: dict[str, Any] = {}


def _child_started(**_: Any) -> None:
    _child.clear()
    instance = DagsterInstance.get()
    url = (
        getattr(instance.run_storage, "postgres_url", None) or os.environ["KNOWLEDGE_DATABASE_URL"]
    )
    _child["instance"] = instance
    _child["leases"] = LeaseStore(
        sa.create_engine(url, pool_size=1, max_overflow=1, pool_pre_ping=True)
    )


def _ready(sender: Any = None, **_: Any) -> None:
    # Whatever the log level: scripts and tests wait for this line.
    _log.warning("node %s ready.", getattr(sender, "hostname", "?"))


def _child_stopping(**_: Any) -> None:
    instance = _child.pop("instance", None)
    if instance is not None:
        instance.dispose()


def _execute(task_id: str, node: str, run_id: str) -> int:
    if "instance" not in _child:  # a solo pool (tests) has no child-start signal
        _child_started()
    leases: LeaseStore = _child["leases"]
    if not leases.begin(run_id, task_id, node, os.getpid()):
        _log.warning("run %s already has a worker: task %s leaves it alone", run_id, task_id)
        return 1
    with LeaseKeeper(leases, run_id, task_id), _signal_handlers_kept(), _profiled(run_id):
        return execute_run(_child["instance"], run_id)


@contextlib.contextmanager
def _profiled(run_id: str) -> Iterator[None]:
    """With ``KNOWLEDGE_PROFILE_DIR`` set, a cProfile of the run: ``<dir>/<run id>.prof``.

    A diagnostic for benchmarks (docs/benchmarks.md): where a launched run's steps spend their
    time, in the pool child that executes them.
    """
    folder = os.environ.get("KNOWLEDGE_PROFILE_DIR")
    if not folder:
        yield
        return
    import cProfile

    profile = cProfile.Profile()
    profile.enable()
    try:
        yield
    finally:
        profile.disable()
        Path(folder).mkdir(parents=True, exist_ok=True)
        profile.dump_stats(str(Path(folder) / f"{run_id}.prof"))


@contextlib.contextmanager
def _signal_handlers_kept() -> Iterator[None]:
    """Dagster rebinds SIGINT and SIGTERM while a run executes; give the pool child its own back.

    Left rebound, SIGTERM would map to the child's SIGINT handler after the first run, and the
    pool could no longer stop or revoke the child the way it expects.
    """
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)
