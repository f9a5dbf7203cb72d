"""The worker health check: dead, zombie and reused PIDs are dead; a live or unknown worker runs."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import uuid

import dagster as dg
import pytest
from dagster._core.events import EngineEventData
from dagster._core.launcher import WorkerStatus
from dagster._core.storage.dagster_run import DagsterRun, DagsterRunStatus

from knowledge_assets.orchestration.launcher import HOST_TAG, HealthCheckedRunLauncher
from knowledge_assets.orchestration.liveness import worker_alive


def sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


def test_a_live_process_is_alive_and_a_killed_one_is_not_even_as_a_zombie() -> None:
    process = sleeper()
    recorded = time.time()
    assert worker_alive(process.pid, recorded)
    process.kill()
    time.sleep(0.5)  # not reaped yet: a zombie, as when the worker's parent died with it
    assert not worker_alive(process.pid, recorded)
    process.wait()
    assert not worker_alive(process.pid, recorded)


def test_a_pid_reused_by_a_newer_process_is_not_the_worker() -> None:
    process = sleeper()
    try:
        long_before = time.time() - 3600  # the PID was recorded an hour before this process began
        assert not worker_alive(process.pid, long_before)
    finally:
        process.kill()
        process.wait()


@pytest.fixture
def launcher(dagster_instance: dg.DagsterInstance) -> HealthCheckedRunLauncher:
    found = dagster_instance.run_launcher
    assert isinstance(found, HealthCheckedRunLauncher), "dagster.yaml configures our launcher"
    return found


def a_started_run(
    instance: dg.DagsterInstance, pid: int | None, host: str = socket.gethostname()
) -> DagsterRun:
    run = instance.add_run(
        DagsterRun(
            job_name="extract_batch",
            run_id=str(uuid.uuid4()),
            status=DagsterRunStatus.STARTED,
            tags={HOST_TAG: host},
        )
    )
    if pid is not None:
        instance.report_engine_event(
            f"Started process for run (pid: {pid}).", run, EngineEventData.in_process(pid)
        )
    return run


def test_the_launcher_fails_only_runs_whose_worker_is_gone(
    dagster_instance: dg.DagsterInstance, launcher: HealthCheckedRunLauncher
) -> None:
    process = sleeper()
    live = a_started_run(dagster_instance, process.pid)
    assert launcher.check_run_worker_health(live).status == WorkerStatus.RUNNING
    process.kill()
    process.wait()
    assert launcher.check_run_worker_health(live).status == WorkerStatus.FAILED


def test_the_launcher_never_judges_what_it_cannot_see(
    dagster_instance: dg.DagsterInstance, launcher: HealthCheckedRunLauncher
) -> None:
    no_pid_yet = a_started_run(dagster_instance, None)
    assert launcher.check_run_worker_health(no_pid_yet).status == WorkerStatus.RUNNING
    elsewhere = a_started_run(dagster_instance, 1, host="another-host")
    assert launcher.check_run_worker_health(elsewhere).status == WorkerStatus.RUNNING
    assert launcher.supports_check_run_worker_health
