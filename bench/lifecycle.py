"""A living graph's costs: delete a document, update one, replay the registry, reprocess.

Two parts. **Platform** (the real path): ``PLATFORM_DOCUMENTS`` ecbplus-dev documents in
batches of 20 run as Dagster runs of a daemon on PostgreSQL (warm workers, the run gate, the
registry's automation), then, each timed from the Orchestrator's call to its end as the CLI
and the API wait for it: one document deleted (a ``delete_documents`` run: its batch rebuilt
without it, the registry replayed, its text forgotten); one document updated (a batch of its
own); the platform restarted under an ontology with one class more and ``reprocess --stale``
(one backfill, then the registry), with the model calls it made (zero: the offline model's raw
output is reused). **Direct**: the same changes on 200 documents in 10 batches in this process
(``ExtractionPipeline``, ``delete_directly``), which shows the work itself without the runs'
overhead, and the registry replayed alone. No target: the figures say what a change costs
against the extraction it avoids.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.common import corpus_paths
from bench.launched import await_daemons, await_workers, database_server, fresh_database
from knowledge_assets.db.engine import database_url, get_engine
from knowledge_assets.db.scratch import scratch_engine
from knowledge_assets.instance.home import open_instance
from knowledge_assets.orchestration.lifecycle import DeletionState
from knowledge_assets.orchestration.orchestrator import Orchestrator
from knowledge_assets.orchestration.state import BatchState
from knowledge_assets.pipeline.documents import read_paths
from knowledge_assets.pipeline.models import DocumentInput
from knowledge_assets.pipeline.pipeline import ExtractionPipeline, delete_directly
from knowledge_assets.pipeline.registry import needs_replay, pending_batches, sync_registry
from knowledge_assets.platform.supervisor import Platform
from knowledge_assets.settings import Settings

DOCUMENTS = 200
BATCHES = 10
PLATFORM_DOCUMENTS = 80
BATCH_SIZE = 20


def run() -> dict[str, Any]:
    """Both parts: the platform's figures (``platform_*``), then the direct ones.

    Met when neither reprocess called the model and nothing was left stale.
    """
    platform, direct = _platform_part(), _direct_part()
    met = bool(platform.pop("platform_met")) and bool(direct.pop("met"))
    target = "0 model calls on reprocess, nothing stale after it"
    return {"benchmark": "lifecycle", **platform, **direct, "target": target, "met": met}


def _direct_part() -> dict[str, Any]:
    """Seconds of each change on the same graph, and the model calls the reprocess made."""
    items, _ = read_paths(corpus_paths(DOCUMENTS))
    size = len(items) // BATCHES
    batches = [items[n * size : (n + 1) * size] for n in range(BATCHES)]
    base = Settings()
    with scratch_engine(base, prefix="ka_bench") as engine:
        settings = base.model_copy(
            update={"database_url": engine.url.render_as_string(hide_password=False)}
        )
        pipeline = ExtractionPipeline(settings, engine=engine)
        began = time.perf_counter()
        for batch in batches:
            pipeline.run(batch)
            sync_registry(engine, pipeline.ontology)
        built = time.perf_counter() - began
        entities = _count(engine, "entities")

        began = time.perf_counter()
        deleted = delete_directly(settings, [batches[0][0].name])
        delete_s = time.perf_counter() - began

        edited = batches[0][1]
        new = DocumentInput(name=edited.name, data=edited.data + b"\nA final note was added.\n")
        began = time.perf_counter()
        pipeline.run([new])
        sync_registry(engine, pipeline.ontology)
        update_s = time.perf_counter() - began

        began = time.perf_counter()
        with engine.begin() as connection:
            connection.execute(sa.text("UPDATE knowledge.registry_batches SET stale = true"))
        replay = sync_registry(engine, pipeline.ontology)
        replay_s = time.perf_counter() - began

        # The graph as it is now: the first batch without the deleted and the edited document
        # (submitting those again would bring back the deleted text, and the old edit), then
        # the edit's own batch. A deleted document's cache entries are gone, by design.
        live = [batches[0][2:], *batches[1:], [new]]
        reprocess_s, calls, hits = _reprocess(settings, engine, live)
    return {
        "documents": len(items),
        "batches": len(batches),
        "entities": entities,
        "build_s": round(built, 2),
        "delete_one_document_s": round(delete_s, 2),
        "delete_rows_retracted": sum(deleted.retracted.values()),
        "update_one_document_s": round(update_s, 2),
        "registry_replay_s": round(replay_s, 2),
        "registry_replay_batches": len(replay.batches),
        "reprocess_after_ontology_change_s": round(reprocess_s, 2),
        "reprocess_model_calls": calls,
        "reprocess_cache_hits": hits,
        "met": calls == 0,
    }


def _platform_part() -> dict[str, Any]:
    """Delete, update and reprocess on a running platform, each timed as a caller waits."""
    items, _ = read_paths(corpus_paths(PLATFORM_DOCUMENTS))
    batches = [items[n : n + BATCH_SIZE] for n in range(0, len(items), BATCH_SIZE)]
    with (
        database_server() as admin_url,
        fresh_database(admin_url) as url,
        tempfile.TemporaryDirectory(prefix="kab-life-") as home,
    ):
        settings = Settings(home=Path(home), database_url=url)
        with _running(settings) as orchestrator:
            began = time.perf_counter()
            batch_ids = [orchestrator.submit(batch).batch_id for batch in batches]
            for batch_id in batch_ids:
                _complete(orchestrator, batch_id)
            _settle(settings)
            built = time.perf_counter() - began
            delete_s, deleted = _timed_deletion(orchestrator, batches[0][0].name)
            update_s = _timed_update(orchestrator, batches[0][1])
        with tempfile.TemporaryDirectory() as folder, _changed_ontology(Path(folder)) as changed:
            reprocess = _timed_reprocess(settings.model_copy(update={"ontology": changed}))
    return {
        "platform_documents": len(items),
        "platform_batches": len(batches),
        "platform_build_s": round(built, 2),
        "platform_delete_one_document_s": round(delete_s, 2),
        "platform_delete_run_s": deleted.seconds,
        "platform_delete_registry_replayed": deleted.registry_replayed,
        "platform_update_one_document_s": round(update_s, 2),
        **reprocess,
    }


@contextmanager
def _running(settings: Settings) -> Iterator[Orchestrator]:
    """A daemon (with its code server), a worker, and an Orchestrator on them."""
    platform = Platform(settings, services=("daemon", "worker"))
    platform.start()
    try:
        with (
            Orchestrator.for_settings(settings) as orchestrator,
            open_instance(settings, database_url(settings)) as instance,
        ):
            await_daemons(instance)
            await_workers(settings.home)
            yield orchestrator
    finally:
        platform.stop()


def _complete(orchestrator: Orchestrator, batch_id: str) -> None:
    """Wait for the batch; a batch that failed makes every later figure meaningless."""
    status = orchestrator.wait(batch_id, timeout_s=1800, poll_s=0.5)
    if status.state != BatchState.COMPLETE:
        raise RuntimeError(f"batch {batch_id} ended {status.state}: {status.error}")


def _settle(settings: Settings, timeout_s: float = 600) -> None:
    """Wait until the registry's automation has merged (or replayed) every batch."""
    engine = get_engine(settings)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with engine.connect() as connection:
            if not pending_batches(connection) and not needs_replay(connection):
                return
        time.sleep(0.5)
    raise TimeoutError("the registry did not settle")


def _timed_deletion(orchestrator: Orchestrator, name: str) -> tuple[float, Any]:
    """Seconds from ``delete`` to the deletion's Complete, and the run's own counts."""
    began = time.perf_counter()
    status = orchestrator.delete([name])
    done = orchestrator.wait_deletion(status.deletion_id, timeout_s=1800)
    seconds = time.perf_counter() - began
    if done.state != DeletionState.COMPLETE:
        raise RuntimeError(f"deletion {done.deletion_id} ended {done.state}: {done.error}")
    return seconds, done.counts


def _timed_update(orchestrator: Orchestrator, document: DocumentInput) -> float:
    """Seconds from submitting an edited version (a batch of its own) to its Complete."""
    edited = DocumentInput(name=document.name, data=document.data + b"\nA final note.\n")
    began = time.perf_counter()
    _complete(orchestrator, orchestrator.submit([edited]).batch_id)
    return time.perf_counter() - began


def _timed_reprocess(settings: Settings) -> dict[str, Any]:
    """Restart under ``settings`` (a changed ontology); ``reprocess --stale`` as one backfill."""
    with _running(settings) as orchestrator:
        stale = [s.batch_id for s in orchestrator.stale()]
        began = time.perf_counter()
        backfill = orchestrator.reprocess(stale)
        done = orchestrator.wait_reprocess(backfill.backfill_id, timeout_s=3600)
        _settle(settings)
        seconds = time.perf_counter() - began
        if not done.succeeded:
            raise RuntimeError(f"backfill {done.backfill_id} ended {done.state}")
        costs = [orchestrator.poll(batch_id).cost for batch_id in stale]
        still = orchestrator.stale()
    calls = sum(c.extractor_calls or 0 for c in costs)
    return {
        "platform_reprocess_batches": len(stale),
        "platform_reprocess_after_ontology_change_s": round(seconds, 2),
        "platform_reprocess_model_calls": calls,
        "platform_reprocess_cache_hits": sum(c.cache_hits or 0 for c in costs),
        "platform_stale_after_reprocess": len(still),
        "platform_met": calls == 0 and not still and len(stale) > 0,
    }


@contextmanager
def _changed_ontology(folder: Path) -> Iterator[Path]:
    """The default ontology with one class more, also set for the platform's children."""
    default = resources.files("knowledge_assets.pipeline").joinpath("data/default_ontology.ttl")
    path = folder / "ontology.ttl"
    path.write_text(default.read_text(encoding="utf-8") + _CITY, encoding="utf-8")
    before = os.environ.get("KNOWLEDGE_ONTOLOGY")
    os.environ["KNOWLEDGE_ONTOLOGY"] = str(path)  # the daemon and its workers read it
    try:
        yield path
    finally:
        if before is None:
            os.environ.pop("KNOWLEDGE_ONTOLOGY", None)
        else:
            os.environ["KNOWLEDGE_ONTOLOGY"] = before


def _reprocess(
    settings: Settings, engine: sa.Engine, batches: list[list[DocumentInput]]
) -> tuple[float, int, int]:
    """Every live batch again under an ontology with one class more: seconds, calls, hits."""
    default = resources.files("knowledge_assets.pipeline").joinpath("data/default_ontology.ttl")
    with tempfile.TemporaryDirectory() as folder:
        changed = Path(folder) / "ontology.ttl"
        changed.write_text(default.read_text(encoding="utf-8") + _CITY, encoding="utf-8")
        pipeline = ExtractionPipeline(
            settings.model_copy(update={"ontology": changed}), engine=engine
        )
        began = time.perf_counter()
        calls = hits = 0
        for batch in batches:
            result = pipeline.run(batch)
            calls, hits = calls + result.extractor_calls, hits + result.cache_hits
        sync_registry(engine, pipeline.ontology)
        return time.perf_counter() - began, calls, hits


def _count(engine: sa.Engine, table: str) -> int:
    with engine.connect() as connection:
        return int(
            connection.execute(sa.text(f"SELECT count(*) FROM knowledge.{table}")).scalar_one()
        )


_CITY = """
news:City a owl:Class ;
    rdfs:subClassOf news:Place ;
    rdfs:label "City"@en ;
    ka:nerLabel "GPE" .
"""
