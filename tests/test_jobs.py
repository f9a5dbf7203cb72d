"""The batch job's executor: every step in the run worker's process, one model load."""

import os

import dagster as dg

from knowledge_assets.defs.definitions import defs
from knowledge_assets.defs.extraction.partitions import BATCHES
from knowledge_assets.defs.resources import _extractor
from knowledge_assets.demo import corpus_files
from knowledge_assets.pipeline.batches import BatchStorage
from knowledge_assets.pipeline.extractors.factory import extractor_info
from knowledge_assets.pipeline.extractors.offline import load_model
from knowledge_assets.pipeline.models import DocumentInput
from knowledge_assets.pipeline.ontology import load_ontology
from knowledge_assets.pipeline.progress import STAGES
from knowledge_assets.settings import Settings


def _stage(settings: Settings, instance: dg.DagsterInstance, names: list[str]) -> str:
    ontology = load_ontology(settings.ontology)
    files = [p for p in corpus_files() if p.name in names]
    manifest = BatchStorage(settings.storage_dir).stage(
        [DocumentInput(name=p.name, data=p.read_bytes()) for p in files],
        max_bytes=settings.max_document_bytes,
        ontology_hash=ontology.hash,
        extractor=extractor_info(settings, ontology),
    )
    instance.add_dynamic_partitions(BATCHES, [manifest.batch_id])
    return manifest.batch_id


def batch_job() -> dg.JobDefinition:
    """extract_batch as the run worker resolves it."""
    return defs.resolve_job_def("extract_batch")


def test_two_runs_in_one_process_load_the_model_once(
    dagster_instance: dg.DagsterInstance, settings: Settings
) -> None:
    names = [p.name for p in corpus_files()]
    batches = [_stage(settings, dagster_instance, part) for part in (names[:2], names[2:])]
    models, extractors = load_model.cache_info(), _extractor.cache_info()
    for batch_id in batches:
        result = dg.execute_job(
            dg.reconstructable(batch_job),
            instance=dagster_instance,
            tags={"dagster/partition": batch_id},
        )
        assert result.success
    # Two runs, each asking for the extractor: at most one load (none if a test loaded it before).
    now = _extractor.cache_info()
    assert (now.hits + now.misses) - (extractors.hits + extractors.misses) == 2
    assert now.misses - extractors.misses <= 1
    assert load_model.cache_info().misses - models.misses <= 1


def test_every_step_of_a_batch_run_executes_in_the_process_running_the_run(
    dagster_instance: dg.DagsterInstance, settings: Settings
) -> None:
    batch_id = _stage(settings, dagster_instance, [corpus_files()[0].name])
    result = dg.execute_job(
        dg.reconstructable(batch_job),
        instance=dagster_instance,
        tags={"dagster/partition": batch_id},
    )
    assert result.success
    # Dagster stamps every event with the pid of the process that emitted it: a step executed
    # in a process of its own (multiprocess executor) would carry that process's pid, and its
    # start would be recorded as STEP_WORKER_STARTING/STARTED events.
    events = [
        entry.dagster_event
        for entry in dagster_instance.all_logs(result.run_id)
        if entry.dagster_event is not None
    ]
    kinds = {event.event_type for event in events}
    assert dg.DagsterEventType.STEP_WORKER_STARTING not in kinds
    assert dg.DagsterEventType.STEP_WORKER_STARTED not in kinds
    (run_start,) = [e for e in events if e.event_type == dg.DagsterEventType.RUN_START]
    # Planned materializations and checks are recorded when the run is created, by no step.
    planned = {
        dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED,
        dg.DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED,
    }
    steps = [e for e in events if e.step_key is not None and e.event_type not in planned]
    succeeded = [e.step_key for e in steps if e.event_type == dg.DagsterEventType.STEP_SUCCESS]
    assert sorted(succeeded) == sorted(STAGES)
    assert {e.pid for e in steps} == {run_start.pid} == {os.getpid()}
