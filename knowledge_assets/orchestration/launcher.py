"""A run launcher that can tell when a run worker died together with its parent.

Dagster's ``DefaultRunLauncher`` supports no worker health check, so a run whose worker and
parent died (a host crash, ``kill -9`` of the whole platform) stays STARTED forever (measured, see
ARCHITECTURE.md). With this launcher, run monitoring asks ``check_run_worker_health`` every poll
interval; a dead worker fails the run and the run retry daemon re-executes it from failure.

A live run must never be failed by mistake, so the answer is RUNNING whenever the launcher cannot
judge: a run launched on another host, or one whose worker has not recorded its PID yet (run
monitoring's start timeout covers workers that never start).
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from typing import Any

from dagster import DefaultRunLauncher
from dagster._core.launcher import CheckRunHealthResult, LaunchRunContext, WorkerStatus
from dagster._core.storage.dagster_run import DagsterRun
from dagster._serdes.config_class import ConfigurableClassData

from knowledge_assets.orchestration.liveness import run_worker_pid, worker_alive

HOST_TAG = "knowledge/worker_host"


class HealthCheckedRunLauncher(DefaultRunLauncher):
    """``DefaultRunLauncher`` plus a PID-based worker health check for runs on this host."""

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]
    ) -> HealthCheckedRunLauncher:
        """Built from dagster.yaml's ``run_launcher`` section (no options)."""
        return cls(inst_data=inst_data)

    def launch_run(self, context: LaunchRunContext) -> None:
        """Record the host before launching, so only this host ever judges the worker."""
        self._instance.add_run_tags(context.dagster_run.run_id, {HOST_TAG: socket.gethostname()})
        super().launch_run(context)

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
