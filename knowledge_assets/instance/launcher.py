"""A run launcher that can tell when a run worker died together with its parent.

Dagster's ``DefaultRunLauncher`` supports no worker health check, so a run whose worker and
parent died (a host crash, ``kill -9`` of the whole platform) stays STARTED forever (measured, see
ARCHITECTURE.md). With this launcher, run monitoring asks ``check_run_worker_health`` every poll
interval; a dead worker fails the run and the run retry daemon re-executes it from failure.

A live run must never be failed by mistake, so the answer is RUNNING whenever the launcher cannot
judge: a run launched on another host, or one whose worker has not recorded its PID yet (run
monitoring's start timeout covers workers that never start).

With ``warm_workers: true`` the launcher inside the daemon forks run workers from a pre-warmed
fork server (``forkserver.py``, started with the daemon by ``orchestration/daemon.py``) instead
of asking the code server to spawn a cold one; the child runs Dagster's own ``dagster api
execute_run``. Whenever the fork server cannot serve (still warming up past its timeout, a
different interpreter, edited code, a crash), the run is launched the default way.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import time
from collections.abc import Mapping
from typing import Any

from dagster import DagsterRun, DefaultRunLauncher, Field

from knowledge_assets.instance.dagster_internals import (
    CheckRunHealthResult,
    ConfigurableClassData,
    LaunchRunContext,
    WorkerStatus,
    execute_run_argv,
)
from knowledge_assets.instance.forkserver import ForkServerError, shared_client
from knowledge_assets.instance.liveness import run_worker_pid, worker_alive

HOST_TAG = "knowledge/worker_host"
# JSON {"run": id, "pid": N, "at": unix time} of a worker forked by the fork server; terminate()
# needs the PID before the worker has recorded its own "Started process" event.
FORKED_TAG = "knowledge/forked_worker"
log = logging.getLogger(__name__)


class HealthCheckedRunLauncher(DefaultRunLauncher):
    """``DefaultRunLauncher`` plus a PID-based worker health check for runs on this host."""

    def __init__(
        self,
        inst_data: ConfigurableClassData | None = None,
        warm_workers: bool = False,
        preload: str | None = None,
    ) -> None:
        super().__init__(inst_data=inst_data)
        self.preload = preload
        self.warm_workers = warm_workers and preload is not None

    @classmethod
    def config_type(cls) -> dict[str, Field]:
        """``warm_workers``: fork run workers from a server warmed up by ``preload``.

        ``preload`` is ``module:function``, the code location's warm-up hook: the launcher is
        told what to load and never imports the code it hosts.
        """
        return {
            "warm_workers": Field(bool, is_required=False, default_value=False),
            "preload": Field(str, is_required=False),
        }

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]
    ) -> HealthCheckedRunLauncher:
        """Built from dagster.yaml's ``run_launcher`` section."""
        return cls(
            inst_data=inst_data,
            warm_workers=bool(config_value.get("warm_workers")),
            preload=config_value.get("preload"),
        )

    def launch_run(self, context: LaunchRunContext) -> None:
        """Record the host before launching, so only this host ever judges the worker."""
        run = context.dagster_run
        self._instance.add_run_tags(run.run_id, {HOST_TAG: socket.gethostname()})
        if self.warm_workers and self._launch_forked(run):
            return
        super().launch_run(context)

    def _launch_forked(self, run: DagsterRun) -> bool:
        """Fork the run's worker from the warm server; False (and a log line) if it cannot."""
        if run.job_code_origin is None or self.preload is None:
            return False
        try:
            pid = shared_client(self.preload).fork(execute_run_argv(run, self._instance))
        except ForkServerError as exc:
            log.warning("run %s: launching a cold worker instead: %s", run.run_id, exc)
            return False
        forked = json.dumps({"run": run.run_id, "pid": pid, "at": time.time()})
        self._instance.add_run_tags(run.run_id, {FORKED_TAG: forked})
        self._run_ids.add(run.run_id)
        return True

    def terminate(self, run_id: str) -> bool:
        """Interrupt a forked worker as Dagster's cancellation does; others the default way."""
        run = self._instance.get_run_by_id(run_id)
        forked = _forked_worker(run) if run is not None else None
        if run is None or run.is_finished or forked is None:
            return bool(super().terminate(run_id))
        if run.tags.get(HOST_TAG) != socket.gethostname():
            return False
        self._instance.report_run_canceling(run)
        pid, launched_at = forked
        if not worker_alive(pid, launched_at):
            return False
        os.kill(pid, signal.SIGINT)
        return True

    @property
    def supports_check_run_worker_health(self) -> bool:
        """Run monitoring calls ``check_run_worker_health`` for STARTED runs."""
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        """FAILED only when this host launched the run and its recorded worker is gone."""
        if run.tags.get(HOST_TAG) != socket.gethostname():
            return CheckRunHealthResult(WorkerStatus.RUNNING, "launched on another host")
        found = run_worker_pid(self._instance, run.run_id)
        if found is None:
            return CheckRunHealthResult(WorkerStatus.RUNNING, "no worker PID recorded yet")
        pid, recorded_at = found
        if worker_alive(pid, recorded_at):
            return CheckRunHealthResult(WorkerStatus.RUNNING, f"worker {pid} alive")
        return CheckRunHealthResult(WorkerStatus.FAILED, f"run worker process {pid} is gone")


def _forked_worker(run: DagsterRun) -> tuple[int, float] | None:
    """PID and fork time of the run's forked worker; None for a cold one.

    A retry run inherits its parent's tags, so a tag naming another run is the parent's worker,
    not this run's: this run was launched cold.
    """
    raw = run.tags.get(FORKED_TAG)
    if raw is None:
        return None
    forked = json.loads(raw)
    if forked.get("run") != run.run_id:
        return None
    return int(forked["pid"]), float(forked["at"])
