"""Fencing: only the newest STARTED run of a batch, holding its lease, commits graph writes."""

from __future__ import annotations

import threading
import uuid

import dagster as dg
import pytest
import sqlalchemy as sa
from dagster import DagsterRun, DagsterRunStatus

from knowledge_assets.db.engine import get_engine
from knowledge_assets.instance.dagster_internals import PARTITION_NAME_TAG
from knowledge_assets.instance.fencing import RunFence
from knowledge_assets.instance.leases import LeaseKeeper, LeaseStore
from knowledge_assets.pipeline import stages
from knowledge_assets.pipeline.models import DocumentInput, ExtractorInfo, ValidatedGraph
from knowledge_assets.pipeline.ontology import load_ontology
from knowledge_assets.pipeline.store import GraphStore, StaleAttempt
from knowledge_assets.settings import Settings
from tests.processes import wait_until


def a_run(instance: dg.DagsterInstance, batch_id: str) -> DagsterRun:
    run = DagsterRun(
        job_name="extract_batch",
        run_id=str(uuid.uuid4()),
        status=DagsterRunStatus.STARTED,
        tags={PARTITION_NAME_TAG: batch_id},
    )
    return instance.add_run(run)


def a_batch(name: str) -> tuple[stages.PreparedDocuments, ValidatedGraph]:
    prepared = stages.prepare(
        [DocumentInput(name=f"{name}.txt", data=f"A note about {name}.".encode())],
        max_bytes=10_000,
    )
    graph = ValidatedGraph(batch_id=name, entities=(), mentions=(), relations=(), quarantined=())
    return prepared, graph


def ingest(store: GraphStore, name: str, fence: RunFence) -> int:
    prepared, graph = a_batch(name)
    info = ExtractorInfo(name="none", version="0", config_hash="")
    extractions = stages.Extractions(extractor=info, results=())
    content = stages.content_of(name, prepared, stages.ChunkSet(chunks=()), extractions)
    recompute = stages.recompute(load_ontology(None), None, threshold=0.9, max_chars=1500)
    return stages.ingest(store, content, graph, recompute, fence).changes.total_added


def test_the_dagster_columns_the_fence_reads_exist(
    dagster_instance: dg.DagsterInstance, settings: Settings
) -> None:
    with get_engine(settings).connect() as connection:
        columns = set(
            connection.execute(
                sa.text(
                    "SELECT table_name || '.' || column_name FROM information_schema.columns "
                    "WHERE table_schema = 'public' AND table_name IN ('runs', 'run_tags')"
                )
            ).scalars()
        )
    assert {"runs.id", "runs.run_id", "runs.status", "run_tags.run_id"} <= columns
    assert {"run_tags.key", "run_tags.value"} <= columns


def test_a_current_run_writes_and_a_failed_one_writes_nothing(
    dagster_instance: dg.DagsterInstance, settings: Settings
) -> None:
    store = GraphStore(get_engine(settings))
    run = a_run(dagster_instance, "b1")
    assert ingest(store, "b1", RunFence(dagster_instance, run.run_id, "b1")) > 0

    dagster_instance.report_run_failed(run)
    before = store.counts()
    with pytest.raises(StaleAttempt, match="FAILURE"):
        ingest(store, "b1", RunFence(dagster_instance, run.run_id, "b1-late"))
    assert store.counts() == before


def test_a_newer_attempt_supersedes_a_run_that_still_thinks_it_is_started(
    dagster_instance: dg.DagsterInstance, settings: Settings
) -> None:
    store = GraphStore(get_engine(settings))
    old = a_run(dagster_instance, "b2")
    new = a_run(dagster_instance, "b2")
    before = store.counts()
    with pytest.raises(StaleAttempt, match="superseded"):
        ingest(store, "b2", RunFence(dagster_instance, old.run_id, "b2"))
    assert store.counts() == before
    assert ingest(store, "b2", RunFence(dagster_instance, new.run_id, "b2")) > 0


def test_an_attempt_whose_lease_was_revoked_writes_nothing(
    dagster_instance: dg.DagsterInstance, settings: Settings
) -> None:
    store, leases = GraphStore(get_engine(settings)), LeaseStore(get_engine(settings))
    run = a_run(dagster_instance, "b3")
    leases.begin(run.run_id, "task-1", "w1@host", 1)
    with LeaseKeeper(leases, run.run_id, "task-1", renew_s=60):
        leases.revoke(run.run_id, force=True)  # what run monitoring does to a silent worker
        before = store.counts()
        with pytest.raises(StaleAttempt, match="lease was revoked"):
            ingest(store, "b3", RunFence(dagster_instance, run.run_id, "b3"))
        assert store.counts() == before


def test_a_committing_attempt_holds_its_lease_but_never_dagsters_rows(
    dagster_instance: dg.DagsterInstance, settings: Settings
) -> None:
    """Revocation waits for the commit; failing the run does not (the retry is never held up)."""
    engine = get_engine(settings)
    leases = LeaseStore(engine)
    run = a_run(dagster_instance, "b4")
    leases.begin(run.run_id, "task-1", "w1@host", 1)
    with LeaseKeeper(leases, run.run_id, "task-1", renew_s=60):
        fence = RunFence(dagster_instance, run.run_id, "b4")
        revoking = threading.Thread(
            target=leases.revoke,
            args=(run.run_id,),
            kwargs={"force": True, "lock_timeout_ms": 30000},
        )
        with engine.begin() as connection:
            fence.check(connection)
            revoking.start()
            wait_until(lambda: _waiting_on_a_lock(engine), 30)
            assert not leases.get(run.run_id).revoked  # type: ignore[union-attr]
            dagster_instance.report_run_failed(run)  # returns at once: no lock on `runs`
            failed = dagster_instance.get_run_by_id(run.run_id)
            assert failed is not None and failed.status == DagsterRunStatus.FAILURE
        revoking.join(timeout=30)
    assert leases.get(run.run_id).revoked  # type: ignore[union-attr]


def _waiting_on_a_lock(engine: sa.Engine) -> bool:
    query = sa.text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    with engine.connect() as connection:
        return bool(connection.execute(query).scalar_one())
