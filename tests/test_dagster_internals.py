"""What we rely on from Dagster's private API (instance/dagster_internals.py), pinned to 1.13.27.

An upgrade of Dagster that changes any of these behaviours fails here first, before the
platform tests that depend on them fail in less obvious ways.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import dagster as dg
import pytest

from knowledge_assets.defs import definitions
from knowledge_assets.defs.extraction.job import RUN_KIND_TAG, extract_batch
from knowledge_assets.defs.extraction.partitions import BATCHES
from knowledge_assets.instance.dagster_internals import (
    DAGSTER_VERSION,
    PARTITION_NAME_TAG,
    WILL_RETRY_TAG,
    CodeLocationRuns,
    LaunchRunContext,
    execute_run,
    instance_on_database,
    records_after,
    run_id_of_task,
)
from knowledge_assets.pipeline.batches import BatchStorage
from knowledge_assets.pipeline.extractors.factory import extractor_info
from knowledge_assets.pipeline.models import DocumentInput
from knowledge_assets.pipeline.ontology import load_ontology
from knowledge_assets.pipeline.progress import STAGES
from knowledge_assets.settings import Settings
from tests.conftest import PROJECT_ROOT

BATCH = "b0123456789abcdef"


def test_the_installed_dagster_is_the_pinned_one() -> None:
    assert dg.__version__ == DAGSTER_VERSION


def test_the_run_tags_we_read_have_the_names_dagster_writes() -> None:
    assert PARTITION_NAME_TAG == "dagster/partition"
    assert WILL_RETRY_TAG == "dagster/will_retry"


def a_run(instance: dg.DagsterInstance) -> dg.DagsterRun:
    run = dg.DagsterRun(job_name=extract_batch.name, run_id=str(uuid.uuid4()))
    return instance.add_run(run)


def test_records_after_returns_exactly_the_runs_records_after_a_storage_id(
    dagster_instance: dg.DagsterInstance,
) -> None:
    ours, other = a_run(dagster_instance), a_run(dagster_instance)
    for n in range(6):  # interleaved: the other run's records sit between ours
        dagster_instance.report_engine_event(f"ours {n}", ours)
        dagster_instance.report_engine_event(f"other {n}", other)
    everything = records_after(dagster_instance, ours.run_id, 0, limit=100)
    ids = [r.storage_id for r in everything.records]
    messages = [r.event_log_entry.message for r in everything.records]
    assert messages == [f"ours {n}" for n in range(6)]
    assert ids == sorted(ids) and not everything.has_more

    for k, pivot in enumerate(ids):
        after = records_after(dagster_instance, ours.run_id, pivot, limit=100)
        assert [r.storage_id for r in after.records] == ids[k + 1 :]
    # A storage id of the other run's (between two of ours) is a position all the same.
    theirs = records_after(dagster_instance, other.run_id, 0, limit=100).records
    (position,) = [r.storage_id for r in theirs if ids[2] < r.storage_id < ids[3]]
    between = records_after(dagster_instance, ours.run_id, position, limit=100)
    assert [r.storage_id for r in between.records] == ids[3:]

    page = records_after(dagster_instance, ours.run_id, ids[0], limit=2)
    assert [r.storage_id for r in page.records] == ids[1:3]
    assert page.has_more


def test_instance_on_database_stores_in_that_database_not_the_environments(
    dagster_instance: dg.DagsterInstance, settings: Settings, reference_url: str
) -> None:
    # The environment (KNOWLEDGE_DATABASE_URL, read by dagster.yaml) names the test database;
    # the instance is asked for another one.
    home = settings.dagster_home
    writer = instance_on_database(home, reference_url)
    reader = instance_on_database(home, reference_url)
    try:
        run = a_run(writer)
        seen = reader.get_run_by_id(run.run_id)
        assert seen is not None and seen.job_name == extract_batch.name
        assert dagster_instance.get_run_by_id(run.run_id) is None
    finally:
        writer.dispose()
        reader.dispose()


@pytest.fixture
def runs(dagster_instance: dg.DagsterInstance) -> Iterator[CodeLocationRuns]:
    """The batch job's runs, created from the code location as the Orchestrator creates them."""
    location = CodeLocationRuns(
        dagster_instance,
        module=definitions.__name__,
        location="knowledge_assets",
        job=extract_batch.name,
        working_directory=PROJECT_ROOT,
    )
    try:
        yield location
    finally:
        location.close()


def test_submit_new_queues_a_run_of_every_stage_with_the_partition_tag(
    dagster_instance: dg.DagsterInstance, runs: CodeLocationRuns
) -> None:
    dagster_instance.add_dynamic_partitions(BATCHES, [BATCH])
    run = runs.submit_new({PARTITION_NAME_TAG: BATCH})
    stored = dagster_instance.get_run_by_id(run.run_id)
    assert stored is not None
    assert stored.status == dg.DagsterRunStatus.QUEUED
    assert stored.job_name == extract_batch.name
    assert stored.tags[PARTITION_NAME_TAG] == BATCH
    assert stored.tags[RUN_KIND_TAG] == "extraction"  # the job's tags come along
    assert sorted(stored.step_keys_to_execute or ()) == sorted(STAGES)
    assert stored.parent_run_id is None
    queued = dagster_instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_ENQUEUED)
    assert len(queued) == 1


def test_the_celery_task_argument_names_the_run_dagster_celery_launched(
    dagster_instance: dg.DagsterInstance, runs: CodeLocationRuns
) -> None:
    """What ``CeleryRunLauncher.launch_run`` packs is what the worker unpacks."""
    from dagster_celery.launcher import CeleryRunLauncher

    sent: list[dict[str, object]] = []

    class Recording(CeleryRunLauncher):
        def _launch_celery_task_run(self, run, task_signature, routing_key):  # type: ignore[no-untyped-def]
            sent.append(dict(task_signature.kwargs))

    dagster_instance.add_dynamic_partitions(BATCHES, [BATCH])
    run = runs.submit_new({PARTITION_NAME_TAG: BATCH})
    launcher = Recording(default_queue="extraction", broker="memory://", backend="cache+memory://")
    launcher.register_instance(dagster_instance)
    launcher.launch_run(LaunchRunContext(dagster_run=run, workspace=None))  # type: ignore[arg-type]
    (kwargs,) = sent
    assert set(kwargs) == {"execute_job_args_packed"}
    assert run_id_of_task(kwargs["execute_job_args_packed"]) == run.run_id


def test_execute_run_executes_a_launched_run_here_and_refuses_a_duplicate(
    dagster_instance: dg.DagsterInstance, runs: CodeLocationRuns, settings: Settings
) -> None:
    ontology = load_ontology(settings.ontology)
    manifest = BatchStorage(settings.storage_dir).stage(
        [DocumentInput(name="note.txt", data=b"Ines Varga opened a bakery in Lisbon.")],
        max_bytes=settings.max_document_bytes,
        ontology_hash=ontology.hash,
        extractor=extractor_info(settings, ontology),
    )
    dagster_instance.add_dynamic_partitions(BATCHES, [manifest.batch_id])
    run = runs.submit_new({PARTITION_NAME_TAG: manifest.batch_id})
    # What the daemon records when it dequeues the run and hands it to the launcher.
    starting = dg.DagsterEvent(dg.DagsterEventType.RUN_STARTING.value, job_name=run.job_name)
    dagster_instance.report_dagster_event(starting, run_id=run.run_id)
    assert execute_run(dagster_instance, run.run_id) == 0
    done = dagster_instance.get_run_by_id(run.run_id)
    assert done is not None and done.status == dg.DagsterRunStatus.SUCCESS
    engine = dagster_instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)
    assert any("Started process for run" in (e.message or "") for e in engine)
    # A second execution of the same run (a re-delivered task) changes nothing.
    execute_run(dagster_instance, run.run_id)
    again = dagster_instance.get_run_by_id(run.run_id)
    assert again is not None and again.status == dg.DagsterRunStatus.SUCCESS


def failed_run(
    instance: dg.DagsterInstance, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> dg.DagsterRun:
    """A run of the batch job that got through documents and chunks, then failed extracting."""
    ontology = load_ontology(settings.ontology)
    manifest = BatchStorage(settings.storage_dir).stage(
        [DocumentInput(name="note.txt", data=b"Ines Varga opened a bakery in Lisbon.")],
        max_bytes=settings.max_document_bytes,
        ontology_hash=ontology.hash,
        extractor=extractor_info(settings, ontology),
    )
    instance.add_dynamic_partitions(BATCHES, [manifest.batch_id])
    monkeypatch.setenv("KNOWLEDGE_SPACY_MODEL", "no_such_spacy_model")
    result = dg.execute_job(
        dg.reconstructable(batch_job),
        instance=instance,
        tags={PARTITION_NAME_TAG: manifest.batch_id},
        raise_on_error=False,
    )
    assert not result.success
    run = instance.get_run_by_id(result.run_id)
    assert run is not None and run.status == dg.DagsterRunStatus.FAILURE
    return run


def batch_job() -> dg.JobDefinition:
    return definitions.defs.resolve_job_def(extract_batch.name)


def test_submit_retry_queues_a_re_execution_from_the_failure_with_the_parents_tags(
    dagster_instance: dg.DagsterInstance,
    runs: CodeLocationRuns,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parent = failed_run(dagster_instance, settings, monkeypatch)
    retry = runs.submit_retry(parent, {"knowledge/interrupted": "false"})
    stored = dagster_instance.get_run_by_id(retry.run_id)
    assert stored is not None
    assert stored.status == dg.DagsterRunStatus.QUEUED
    assert stored.parent_run_id == stored.root_run_id == parent.run_id
    assert stored.tags[PARTITION_NAME_TAG] == parent.tags[PARTITION_NAME_TAG]
    assert stored.tags["knowledge/interrupted"] == "false"
    assert stored.tags["dagster/parent_run_id"] == parent.run_id
    # From the failure: the stages that succeeded before it are not run again.
    done = {"documents", "chunks"}
    assert sorted(stored.step_keys_to_execute or ()) == sorted(set(STAGES) - done)


def test_a_failed_run_is_tagged_with_whether_dagster_will_retry_it(
    dagster_instance: dg.DagsterInstance, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # dagster.yaml enables run retries (3): the instance tags the failure when it records it.
    parent = failed_run(dagster_instance, settings, monkeypatch)
    assert parent.tags[WILL_RETRY_TAG] == "true"


def test_the_run_retry_daemon_reads_its_cursors_under_our_keys() -> None:
    """The keys ``start_run_retry_cursors`` writes are the ones Dagster's consumer reads."""
    from dagster._daemon.auto_run_reexecution import event_log_consumer  # noqa: TID251

    from knowledge_assets.instance.dagster_internals import RUN_RETRY_CURSOR_KEYS

    expected = {
        event_log_consumer._create_cursor_key(event)
        for event in event_log_consumer.DAGSTER_EVENT_TYPES
    }
    assert expected == RUN_RETRY_CURSOR_KEYS
