"""The worker health check: dead, zombie and reused PIDs are dead; a live or unknown worker runs."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import uuid

import dagster as dg
import pytest
from dagster import DagsterRun, DagsterRunStatus

from knowledge_assets.instance.dagster_internals import EngineEventData, WorkerStatus
from knowledge_assets.instance.launcher import FORKED_TAG, HOST_TAG, HealthCheckedRunLauncher
from knowledge_assets.instance.liveness import worker_alive


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


def a_forked_run(instance: dg.DagsterInstance, pid: int, named_run: str | None = None) -> str:
    """A STARTED run whose forked-worker tag names ``pid`` (and ``named_run``, default itself)."""
    run = a_started_run(instance, None)
    forked = {"run": named_run or run.run_id, "pid": pid, "at": time.time()}
    instance.add_run_tags(run.run_id, {FORKED_TAG: json.dumps(forked)})
    return run.run_id


def test_terminate_interrupts_the_forked_worker_named_for_this_run(
    dagster_instance: dg.DagsterInstance, launcher: HealthCheckedRunLauncher
) -> None:
    process = sleeper()
    try:
        run_id = a_forked_run(dagster_instance, process.pid)
        assert launcher.terminate(run_id)
        assert process.wait(timeout=10) != 0  # SIGINT ended it, as Dagster's cancellation would
    finally:
        process.kill()


def test_terminate_ignores_a_forked_tag_inherited_from_the_parent_run(
    dagster_instance: dg.DagsterInstance, launcher: HealthCheckedRunLauncher
) -> None:
    process = sleeper()
    try:
        run_id = a_forked_run(dagster_instance, process.pid, named_run=str(uuid.uuid4()))
        assert not launcher.terminate(run_id)  # a cold run: the code server's way, none here
        time.sleep(0.5)
        assert process.poll() is None, "the parent's worker PID was signalled"
    finally:
        process.kill()
        process.wait()
