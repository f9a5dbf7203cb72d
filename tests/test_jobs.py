"""The batch job's executor: every step in the run worker's process, one model load."""

import dagster as dg

from knowledge_assets.defs.definitions import defs
from knowledge_assets.defs.extraction.job import extract_batch
from knowledge_assets.defs.extraction.partitions import BATCHES
from knowledge_assets.defs.resources import _extractor
from knowledge_assets.demo import corpus_files
from knowledge_assets.pipeline.batches import BatchStorage
from knowledge_assets.pipeline.extractors.factory import extractor_info
from knowledge_assets.pipeline.extractors.offline import load_model
from knowledge_assets.pipeline.models import DocumentInput
from knowledge_assets.pipeline.ontology import load_ontology
from knowledge_assets.settings import Settings


def test_extract_batch_runs_steps_in_process() -> None:
    assert extract_batch.executor_def is dg.in_process_executor


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
