"""Batches in particular shapes for stream tests, made with the real staging and Dagster APIs."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dagster as dg

from knowledge_assets.db.engine import database_url, engine_for
from knowledge_assets.defs.definitions import defs
from knowledge_assets.instance.home import open_instance
from knowledge_assets.pipeline.batches import BatchManifest, BatchStorage
from knowledge_assets.pipeline.extractors.factory import extractor_info
from knowledge_assets.pipeline.models import DocumentInput
from knowledge_assets.pipeline.ontology import load_ontology
from knowledge_assets.pipeline.progress import format_progress
from knowledge_assets.settings import Settings


def stage_only(settings: Settings, text: str) -> BatchManifest:
    """A staged batch that nobody started: its stream waits for a first run."""
    ontology = load_ontology(settings.ontology)
    return BatchStorage(settings.storage_dir).stage(
        [DocumentInput(name="waiting.txt", data=text.encode())],
        max_bytes=settings.max_document_bytes,
        ontology_hash=ontology.hash,
        extractor=extractor_info(settings, ontology),
    )


@contextmanager
def instance_for(settings: Settings) -> Iterator[dg.DagsterInstance]:
    with open_instance(settings) as instance:
        yield instance


def long_running_extraction(settings: Settings, batch_id: str, progress_lines: int) -> str:
    """A started run of the batch whose extraction step has logged many progress lines.

    Stands for hours of a large extraction: the run is created as the batch's run and its
    records are real event-log entries, written the way a step's ``context.log`` writes them.
    """
    with instance_for(settings) as instance:
        job = defs.resolve_job_def("extract_batch")
        run = instance.create_run_for_job(
            job, tags={"dagster/partition": batch_id}, status=dg.DagsterRunStatus.STARTED
        )
        entries = [
            dg.EventLogEntry(
                error_info=None,
                level=logging.INFO,
                user_message=format_progress("extractions", done, progress_lines),
                run_id=run.run_id,
                timestamp=time.time(),
                step_key="extractions",
                job_name=job.name,
                dagster_event=None,
            )
            for done in range(1, progress_lines + 1)
        ]
        # One multi-row insert built by Dagster's own storage: the rows are exactly what
        # store_event writes, without a connection per row.
        insert = instance.event_log_storage.prepare_insert_event_batch(entries)  # type: ignore[attr-defined]
        with engine_for(database_url(settings)).begin() as connection:
            connection.execute(insert)
        return run.run_id


def progress_insert(settings: Settings, run_id: str, done: int, total: int) -> Any:
    """The INSERT Dagster's own storage would run for one progress line of the run's extraction."""
    with instance_for(settings) as instance:
        run = instance.get_run_by_id(run_id)
        assert run is not None
        entry = dg.EventLogEntry(
            error_info=None,
            level=logging.INFO,
            user_message=format_progress("extractions", done, total),
            run_id=run_id,
            timestamp=time.time(),
            step_key="extractions",
            job_name=run.job_name,
            dagster_event=None,
        )
        return instance.event_log_storage.prepare_insert_event(entry)  # type: ignore[attr-defined]
