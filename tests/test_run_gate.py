"""The one gate for exactly-once (issue 16): the run coordinator of dagster.yaml, on PostgreSQL.

Runs are created and submitted exactly as the Orchestrator, the sensor daemon and the retry
daemon do (create, then ``DagsterInstance.submit_run``); no daemon runs, so admitted runs stay
queued and the tests read what the gate decided.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import dagster as dg
import pytest
from dagster import DagsterRunStatus

from knowledge_assets.defs import definitions
from knowledge_assets.defs.extraction.job import extract_batch
from knowledge_assets.instance.dagster_internals import PARTITION_NAME_TAG, CodeLocationRuns
from knowledge_assets.instance.home import PROJECT_ROOT
from knowledge_assets.instance.run_gate import (
    RERUN_TAG,
    ExactlyOnceRunCoordinator,
    admit,
    submitted_runs,
)
from knowledge_assets.instance.storage import runs_engine

BATCH = "b00000000000000a1"
# Threads of one process share the storage's pool of 6 connections, and Dagster's event write
# checks out a second one while holding the first: more than 3 racers can starve the pool
# itself (a limit of the pool, not of the gate; processes racing each have their own).
RACERS = 3


@pytest.fixture
def runs_of_job(dagster_instance: dg.DagsterInstance) -> Iterator[CodeLocationRuns]:
    runs = CodeLocationRuns(
        dagster_instance,
        module=definitions.__name__,
        location="knowledge_assets",
        job=extract_batch.name,
        working_directory=PROJECT_ROOT,
    )
    try:
        yield runs
    finally:
        runs.close()


def all_runs(instance: dg.DagsterInstance, batch: str = BATCH) -> list[dg.DagsterRun]:
    return list(reversed(instance.get_runs(dg.RunsFilter(tags={PARTITION_NAME_TAG: batch}))))


def fail(instance: dg.DagsterInstance, run: dg.DagsterRun) -> dg.DagsterRun:
    instance.report_run_failed(run)
    failed = instance.get_run_by_id(run.run_id)
    assert failed is not None
    return failed


def test_the_instance_of_dagster_yaml_uses_the_gate(dagster_instance: dg.DagsterInstance) -> None:
    assert isinstance(dagster_instance.run_coordinator, ExactlyOnceRunCoordinator)
    assert runs_engine(dagster_instance) is not None, "the gate would take no lock"


def race(runs_of_job: CodeLocationRuns, submitters: int, tags: dict[str, str]) -> None:
    """``submitters`` threads create and submit a run of the batch at the same moment."""
    barrier = threading.Barrier(submitters)
    errors: list[BaseException] = []

    def submit() -> None:
        try:
            barrier.wait()
            runs_of_job.submit_new(tags)
        except BaseException as exc:  # the test reports it below
            errors.append(exc)

    threads = [threading.Thread(target=submit) for _ in range(submitters)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors


@pytest.mark.parametrize("trial", range(1))
def test_simultaneous_submissions_of_one_batch_queue_exactly_one_run(
    dagster_instance: dg.DagsterInstance, runs_of_job: CodeLocationRuns, trial: int
) -> None:
    race(runs_of_job, RACERS, {PARTITION_NAME_TAG: BATCH})
    runs = all_runs(dagster_instance)
    assert [r.status for r in runs] == [DagsterRunStatus.QUEUED], runs
    (kept,) = runs
    records = dagster_instance.get_records_for_run(kept.run_id).records
    # The refused runs left no event behind: only the kept run's records exist for the batch.
    assert {r.event_log_entry.run_id for r in records} == {kept.run_id}


@pytest.mark.slow
@pytest.mark.parametrize("trial", range(5))
def test_simultaneous_submissions_repeated(
    dagster_instance: dg.DagsterInstance, runs_of_job: CodeLocationRuns, trial: int
) -> None:
    race(runs_of_job, RACERS, {PARTITION_NAME_TAG: f"{BATCH[:-1]}{trial}"})
    assert len(all_runs(dagster_instance, f"{BATCH[:-1]}{trial}")) == 1


def test_a_batch_with_a_run_gets_no_second_fresh_run(
    dagster_instance: dg.DagsterInstance, runs_of_job: CodeLocationRuns
) -> None:
    first = runs_of_job.submit_new({PARTITION_NAME_TAG: BATCH})
    answered = runs_of_job.submit_new({PARTITION_NAME_TAG: BATCH})
    assert answered.run_id == first.run_id, "the refused submitter is shown the holder"
    fail(dagster_instance, first)
    runs_of_job.submit_new({PARTITION_NAME_TAG: BATCH})  # a finished batch: still refused
    assert [r.run_id for r in all_runs(dagster_instance)] == [first.run_id]


def test_a_failed_run_is_retried_once_and_only_as_the_newest(
    dagster_instance: dg.DagsterInstance, runs_of_job: CodeLocationRuns
) -> None:
    first = fail(dagster_instance, runs_of_job.submit_new({PARTITION_NAME_TAG: BATCH}))
    retry = runs_of_job.submit_retry(first, {})
    assert retry.status == DagsterRunStatus.QUEUED
    # The retry daemon and a user's resume racing: the second retry of the same run is refused.
    runs_of_job.submit_retry(first, {})
    assert [r.run_id for r in all_runs(dagster_instance)] == [first.run_id, retry.run_id]
    # Once the retry failed too, only it may be retried; the older failure no longer.
    failed_retry = fail(dagster_instance, retry)
    runs_of_job.submit_retry(first, {})
    second = runs_of_job.submit_retry(failed_retry, {})
    assert [r.run_id for r in all_runs(dagster_instance)] == [
        first.run_id,
        retry.run_id,
        second.run_id,
    ]


def test_a_rerun_is_admitted_only_when_nothing_runs(
    dagster_instance: dg.DagsterInstance, runs_of_job: CodeLocationRuns
) -> None:
    first = runs_of_job.submit_new({PARTITION_NAME_TAG: BATCH})
    runs_of_job.submit_new({PARTITION_NAME_TAG: BATCH, RERUN_TAG: "true"})
    assert len(all_runs(dagster_instance)) == 1, "a rerun beside a live run"
    dagster_instance.report_run_canceled(first)
    rerun = runs_of_job.submit_new({PARTITION_NAME_TAG: BATCH, RERUN_TAG: "true"})
    assert rerun.status == DagsterRunStatus.QUEUED
    assert len(all_runs(dagster_instance)) == 2


def test_runs_without_a_partition_pass_untouched(
    dagster_instance: dg.DagsterInstance, runs_of_job: CodeLocationRuns
) -> None:
    one = runs_of_job.submit_new({})
    two = runs_of_job.submit_new({})
    assert one.status == two.status == DagsterRunStatus.QUEUED


def test_admit_ignores_runs_that_were_never_submitted(
    dagster_instance: dg.DagsterInstance,
) -> None:
    job = definitions.defs.resolve_job_def(extract_batch.name)
    orphan = dagster_instance.create_run_for_job(job, tags={PARTITION_NAME_TAG: BATCH})
    assert orphan.status == DagsterRunStatus.NOT_STARTED
    assert submitted_runs(dagster_instance, BATCH) == []
    fresh = dagster_instance.create_run_for_job(job, tags={PARTITION_NAME_TAG: BATCH})
    assert admit(fresh, submitted_runs(dagster_instance, BATCH)).admitted
