"""The run launcher's health check from worker leases, its cancel, and the queues by kind."""

from __future__ import annotations

import threading
import time
import uuid

import dagster as dg
import pytest
from dagster import DagsterRun, DagsterRunStatus
from dagster_celery.tags import DAGSTER_CELERY_TASK_ID_TAG

from knowledge_assets.db.engine import get_engine
from knowledge_assets.instance.dagster_internals import WorkerStatus
from knowledge_assets.instance.launcher import LeasedCeleryRunLauncher
from knowledge_assets.instance.leases import LeaseStore
from knowledge_assets.instance.queues import (
    QUEUE_LLM,
    QUEUE_OFFLINE,
    QUEUE_REGISTRY,
    RUN_KIND_TAG,
    queue_for,
)
from knowledge_assets.settings import Settings


@pytest.fixture
def launcher(dagster_instance: dg.DagsterInstance) -> LeasedCeleryRunLauncher:
    found = dagster_instance.run_launcher
    assert isinstance(found, LeasedCeleryRunLauncher), "dagster.yaml configures our launcher"
    return found


@pytest.fixture
def leases(settings: Settings) -> LeaseStore:
    return LeaseStore(get_engine(settings))


def a_started_run(instance: dg.DagsterInstance, task_id: str | None = None) -> DagsterRun:
    tags = {DAGSTER_CELERY_TASK_ID_TAG: task_id} if task_id else {}
    run = DagsterRun(
        job_name="extract_batch", run_id=str(uuid.uuid4()), status=DagsterRunStatus.STARTED,
        tags=tags,
    )  # fmt: skip
    return instance.add_run(run)


def health(launcher: LeasedCeleryRunLauncher, run: DagsterRun) -> WorkerStatus:
    return launcher.check_run_worker_health(run).status


def test_resume_is_off_and_health_is_checked(launcher: LeasedCeleryRunLauncher) -> None:
    assert launcher.supports_check_run_worker_health
    assert not launcher.supports_resume_run
    assert launcher.preload == "knowledge_assets.defs.definitions:warm_up"


def test_a_run_is_running_while_its_lease_is_renewed_and_failed_once_silent(
    dagster_instance: dg.DagsterInstance, launcher: LeasedCeleryRunLauncher, leases: LeaseStore
) -> None:
    run = a_started_run(dagster_instance)
    assert health(launcher, run) == WorkerStatus.RUNNING, "no worker has taken it yet"
    leases.begin(run.run_id, "task-1", "w1@host", 1, ttl_s=0.5)
    result = launcher.check_run_worker_health(run)
    assert result.status == WorkerStatus.RUNNING and "w1@host" in (result.msg or "")
    time.sleep(0.8)
    assert health(launcher, run) == WorkerStatus.FAILED
    assert leases.get(run.run_id).revoked, "revoked before the run is reported failed"  # type: ignore[union-attr]


def test_a_silent_lease_whose_ingest_is_committing_is_judged_again_later(
    dagster_instance: dg.DagsterInstance, launcher: LeasedCeleryRunLauncher, leases: LeaseStore
) -> None:
    run = a_started_run(dagster_instance)
    leases.begin(run.run_id, "task-1", "w1@host", 1, ttl_s=0.2)
    time.sleep(0.4)
    held, release = threading.Event(), threading.Event()

    def committing() -> None:
        with leases.engine.begin() as connection:
            LeaseStore.fence(connection, run.run_id, "task-1")
            held.set()
            release.wait(30)

    fence = threading.Thread(target=committing)
    fence.start()
    try:
        assert held.wait(10)
        assert health(launcher, run) == WorkerStatus.RUNNING
    finally:
        release.set()
        fence.join()
    assert health(launcher, run) == WorkerStatus.FAILED


def test_a_finished_lease_of_an_unfinished_run_is_a_failed_worker(
    dagster_instance: dg.DagsterInstance, launcher: LeasedCeleryRunLauncher, leases: LeaseStore
) -> None:
    run = a_started_run(dagster_instance)
    leases.begin(run.run_id, "task-1", "w1@host", 1)
    leases.finish(run.run_id, "task-1")
    assert health(launcher, run) == WorkerStatus.FAILED


def test_a_task_the_backend_reports_ended_fails_its_run_without_waiting_for_the_lease(
    dagster_instance: dg.DagsterInstance, launcher: LeasedCeleryRunLauncher, leases: LeaseStore
) -> None:
    task_id = str(uuid.uuid4())
    run = a_started_run(dagster_instance, task_id)
    leases.begin(run.run_id, task_id, "w1@host", 1, ttl_s=600)
    assert health(launcher, run) == WorkerStatus.RUNNING
    # What Celery's pool records when the child executing the task is killed.
    launcher.celery.backend.store_result(task_id, RuntimeError("worker lost"), "FAILURE")
    assert health(launcher, run) == WorkerStatus.FAILED
    assert leases.get(run.run_id).revoked  # type: ignore[union-attr]


def test_terminate_cancels_a_run_no_worker_took_and_marks_a_taken_one_canceling(
    dagster_instance: dg.DagsterInstance, launcher: LeasedCeleryRunLauncher, leases: LeaseStore
) -> None:
    waiting = a_started_run(dagster_instance, str(uuid.uuid4()))
    assert launcher.terminate(waiting.run_id)
    assert dagster_instance.get_run_by_id(waiting.run_id).status == DagsterRunStatus.CANCELED  # type: ignore[union-attr]

    task_id = str(uuid.uuid4())
    taken = a_started_run(dagster_instance, task_id)
    leases.begin(taken.run_id, task_id, "w1@host", 1)
    assert launcher.terminate(taken.run_id)
    # Dagster's cancel, not a failure: run retries must not undo it.
    assert dagster_instance.get_run_by_id(taken.run_id).status == DagsterRunStatus.CANCELING  # type: ignore[union-attr]
    assert not launcher.terminate(a_started_run(dagster_instance).run_id), "never launched"


def test_runs_go_to_the_queue_of_their_kind() -> None:
    assert queue_for({RUN_KIND_TAG: "extraction"}, "offline") == QUEUE_OFFLINE
    assert queue_for({RUN_KIND_TAG: "extraction"}, "llm") == QUEUE_LLM
    assert queue_for({RUN_KIND_TAG: "registry"}, "llm") == QUEUE_REGISTRY
    assert queue_for({}, "offline") == QUEUE_OFFLINE
