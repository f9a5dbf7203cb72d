"""Dagster's ``CeleryRunLauncher`` with worker leases, queues by kind, a real cancel and no resume.

Each run is a Celery task executed by a warm worker (``worker.py``) on any host. Subclassed through
Dagster's public ``RunLauncher`` interface only (``launch_run``, ``terminate``,
``check_run_worker_health``, ``supports_resume_run``, ``get_run_worker_debug_info``), because the
stock launcher falls short in three ways (measured, docs/scaling.md):

* health: it reads the task's state from the result backend, which says STARTED forever when a
  whole worker dies. Here the run's lease (``leases.py``) decides: a silent lease is revoked, then
  the run is failed, and the retry daemon re-executes it from failure on another worker;
* terminate: it revokes the task without marking the run CANCELING, so Dagster records an
  unexpected failure and run retries undo the user's cancel. Here CANCELING comes first;
* resume: ``resume_run`` sends an argument the task does not take (TypeError). Resuming in place is
  not used (``max_resume_run_attempts: 0``): from-failure run retries instead.

The broker and result backend are ``KNOWLEDGE_BROKER_URL`` (Valkey) unless dagster.yaml names
them; the leases live in the database of the instance's run storage.
"""

from __future__ import annotations

import functools
import logging
import os
import warnings
from collections.abc import Mapping
from typing import Any

import redis
import sqlalchemy as sa
from dagster import DagsterRun, Field, Noneable, Permissive, StringSource
from dagster_celery.launcher import CeleryRunLauncher
from dagster_celery.tags import DAGSTER_CELERY_QUEUE_TAG, DAGSTER_CELERY_TASK_ID_TAG

from knowledge_assets.instance.celery_settings import celery_settings
from knowledge_assets.instance.dagster_internals import (
    CheckRunHealthResult,
    ConfigurableClassData,
    LaunchRunContext,
    WorkerStatus,
)
from knowledge_assets.instance.leases import LeaseBusy, LeaseStore
from knowledge_assets.instance.queues import QUEUE_OFFLINE, queue_for
from knowledge_assets.settings import Settings

__all__ = ["LeasedCeleryRunLauncher"]

_log = logging.getLogger(__name__)
_TASK_ENDED = {"SUCCESS", "FAILURE", "REVOKED"}


@functools.cache
def _lease_store(url: str) -> LeaseStore:
    return LeaseStore(sa.create_engine(url, pool_size=1, max_overflow=2, pool_pre_ping=True))


@functools.cache
def _results_client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)


class LeasedCeleryRunLauncher(CeleryRunLauncher):
    """Runs as Celery tasks on warm workers; their health from worker leases in PostgreSQL."""

    def __init__(
        self,
        default_queue: str = QUEUE_OFFLINE,
        broker: str | None = None,
        backend: str | None = None,
        include: list[str] | None = None,
        config_source: dict[str, Any] | None = None,
        preload: str | None = None,
        inst_data: ConfigurableClassData | None = None,
    ) -> None:
        url = broker or os.environ.get("KNOWLEDGE_BROKER_URL")
        super().__init__(
            default_queue=default_queue,
            broker=url,
            backend=backend or url,
            include=include,
            config_source={**celery_settings(), **(config_source or {})},
            inst_data=inst_data,
        )
        self.preload = preload

    @classmethod
    def config_type(cls) -> dict[str, Field]:
        """``CeleryRunLauncher``'s fields, all optional, and ``preload``.

        ``preload`` is ``module:function``, the code location's warm-up hook that workers call
        before forking their pool: run hosting is told what to load, never imports it itself.
        """
        return {
            "broker": Field(Noneable(StringSource), is_required=False),
            "backend": Field(Noneable(StringSource), is_required=False),
            "include": Field([str], is_required=False),
            "default_queue": Field(StringSource, is_required=False, default_value=QUEUE_OFFLINE),
            "config_source": Field(Noneable(Permissive()), is_required=False),
            "preload": Field(StringSource, is_required=False),
        }

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]
    ) -> LeasedCeleryRunLauncher:
        """Built from dagster.yaml's ``run_launcher`` section."""
        return cls(inst_data=inst_data, **config_value)

    # -- launch -----------------------------------------------------------------------------

    def launch_run(self, context: LaunchRunContext) -> None:
        """Route the run to its queue (recorded as the run's queue tag), then launch it."""
        self._require_broker()
        run = context.dagster_run
        queue = queue_for(run.tags, Settings().extractor)
        if run.tags.get(DAGSTER_CELERY_QUEUE_TAG) != queue:
            self._instance.add_run_tags(run.run_id, {DAGSTER_CELERY_QUEUE_TAG: queue})
            run = run.with_tags({**run.tags, DAGSTER_CELERY_QUEUE_TAG: queue})
            context = LaunchRunContext(dagster_run=run, workspace=context.workspace)
        with warnings.catch_warnings():
            # dagster-celery registers its task again on every launch: harmless, noisy.
            warnings.filterwarnings("ignore", message=".*[Dd]uplicate.*task")
            super().launch_run(context)

    # -- cancel -----------------------------------------------------------------------------

    def terminate(self, run_id: str) -> bool:
        """CANCELING first, then revoke the task; a run no worker has taken is CANCELED at once."""
        run = self._instance.get_run_by_id(run_id)
        if run is None or run.is_finished:
            return False
        task_id = run.tags.get(DAGSTER_CELERY_TASK_ID_TAG)
        if task_id is None:
            return False
        self._require_broker()
        if run.status != run.status.CANCELING:
            self._instance.report_run_canceling(run)
        if self._leases().get(run_id) is None:
            self.celery.control.revoke(task_id)  # still in the broker: it will never start
            self._instance.report_run_canceled(run, message="canceled before a worker took it")
            return True
        # SIGTERM: Dagster turns it into an interrupt and the run ends CANCELED.
        self.celery.control.revoke(task_id, terminate=True, signal="SIGTERM")
        return True

    def kill(self, run_id: str) -> bool:
        """Stop the run's worker process at once (SIGKILL): for a cancel that took too long."""
        run = self._instance.get_run_by_id(run_id)
        task_id = run.tags.get(DAGSTER_CELERY_TASK_ID_TAG) if run is not None else None
        if task_id is None:
            return False
        self._require_broker()
        self.celery.control.revoke(task_id, terminate=True, signal="SIGKILL")
        return True

    # -- resume: not used -------------------------------------------------------------------

    @property
    def supports_resume_run(self) -> bool:
        """False: the stock task cannot resume (TypeError); from-failure retries instead."""
        return False

    # -- health -----------------------------------------------------------------------------

    @property
    def supports_check_run_worker_health(self) -> bool:
        """Run monitoring asks ``check_run_worker_health`` about every STARTED run."""
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        """RUNNING while the run's lease is renewed; FAILED once revoked for silence.

        A task the result backend reports ended (its pool child was killed) while the lease is
        still fresh is revoked at once rather than after the lease's time to live.
        """
        leases = self._leases()
        lease = leases.get(run.run_id)
        ended = self._task_ended(run)
        if lease is None:
            if ended:
                return CheckRunHealthResult(WorkerStatus.FAILED, "its task ended before it began")
            return CheckRunHealthResult(WorkerStatus.RUNNING, "no worker has taken it yet")
        where = f"worker {lease.node} (pid {lease.pid})"
        if lease.revoked:
            return CheckRunHealthResult(WorkerStatus.FAILED, f"{where} lost its lease")
        if lease.finished:
            return CheckRunHealthResult(WorkerStatus.FAILED, f"{where} returned, run unfinished")
        if not (lease.expired or ended):
            return CheckRunHealthResult(WorkerStatus.RUNNING, where)
        try:
            revoked = leases.revoke(run.run_id, force=ended)
        except LeaseBusy:
            return CheckRunHealthResult(WorkerStatus.RUNNING, f"{where} is committing: re-check")
        if not revoked:
            return CheckRunHealthResult(WorkerStatus.RUNNING, f"{where} renewed its lease")
        why = "its task ended" if ended else f"lease silent for {lease.silent_s:.1f} s"
        return CheckRunHealthResult(WorkerStatus.FAILED, f"{where} lost: {why}")

    def get_run_worker_debug_info(
        self, run: DagsterRun, include_container_logs: bool | None = True
    ) -> str | None:
        """The lease's node and pid (no broker round trip)."""
        lease = self._leases().get(run.run_id)
        return str({"run_id": run.run_id, "lease": lease.__dict__ if lease else None})

    # -- internals --------------------------------------------------------------------------

    def _leases(self) -> LeaseStore:
        url = getattr(self._instance.run_storage, "postgres_url", None)
        return _lease_store(url or os.environ["KNOWLEDGE_DATABASE_URL"])

    def _task_ended(self, run: DagsterRun) -> bool:
        """Whether the result backend records the run's task as ended.

        Read with one short GET, not through Celery's backend, which retries for up to a minute
        while the broker restarts: run monitoring must not stall on it. Unknown means no.
        """
        task_id = run.tags.get(DAGSTER_CELERY_TASK_ID_TAG)
        if task_id is None or not self.backend:
            return False
        backend = self.celery.backend
        try:
            raw = _results_client(self.backend).get(backend.get_key_for_task(task_id))
            meta = backend.decode_result(raw) if raw else {}
        except Exception:  # the backend is down or restarting: the lease alone decides
            _log.debug("no task state for run %s", run.run_id, exc_info=True)
            return False
        return meta.get("status") in _TASK_ENDED

    def _require_broker(self) -> None:
        if not self.broker:
            raise RuntimeError(
                "KNOWLEDGE_BROKER_URL is not set: runs are Celery tasks (see cluster.env)"
            )
