"""Crash a batch mid-extraction with kill -9, let the platform recover, compare the graph."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from knowledge_assets.db import tables as t
from knowledge_assets.db.embedded import EmbeddedPostgres
from knowledge_assets.db.engine import engine_for, get_engine
from knowledge_assets.failpoints import ALWAYS, ENVIRONMENT, arm
from knowledge_assets.orchestration.orchestrator import Orchestrator
from knowledge_assets.orchestration.state import BatchState, BatchStatus
from knowledge_assets.pipeline import stages
from knowledge_assets.settings import Settings
from tests.conftest import free_port
from tests.corpus import synthetic_documents
from tests.durability import (
    LLM_CONCURRENCY,
    extraction_underway,
    graph_snapshot,
    kill_run_worker,
    llm_environment,
    redone_calls,
    reference_run,
)
from tests.fakes.openai_server import FakeOpenAI
from tests.processes import DagsterDaemon, KnowledgeUp, wait_until


@pytest.fixture
def llm_settings(
    settings: Settings, fake_llm: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    for key, value in llm_environment(fake_llm).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv(ENVIRONMENT, str(tmp_path / "failpoints"))
    monkeypatch.setenv("DAGSTER_HOME", str(settings.dagster_home))
    return Settings()


@pytest.fixture
def orchestrator(llm_settings: Settings) -> Iterator[Orchestrator]:
    with Orchestrator.for_settings(llm_settings) as orchestrator:
        yield orchestrator


@pytest.fixture
def daemon(llm_settings: Settings, orchestrator: Orchestrator) -> Iterator[DagsterDaemon]:
    process = DagsterDaemon(llm_settings).start()
    yield process
    process.stop()


def test_kill_9_of_the_run_worker_mid_extraction_resumes_with_the_same_graph(
    llm_settings: Settings,
    orchestrator: Orchestrator,
    daemon: DagsterDaemon,
    fake_llm: FakeOpenAI,
    reference_url: str,
) -> None:
    items = synthetic_documents(30)
    expected, chunks = reference_run(llm_settings, reference_url, items, fake_llm)

    batch_id = orchestrator.submit(items).batch_id
    wait_until(lambda: extraction_underway(fake_llm, chunks), 120, every=0.05)
    kill = kill_run_worker(orchestrator, batch_id, fake_llm)

    done = orchestrator.wait(batch_id, timeout_s=240)
    assert done.state == BatchState.COMPLETE, done
    assert len(done.runs) >= 2, "the killed run was retried from failure"
    assert graph_snapshot(orchestrator.settings) == expected
    assert redone_calls(fake_llm, kill) <= LLM_CONCURRENCY
    assert len({r.chunk_text for r in fake_llm.requests}) == chunks
    assert os.getpid() != kill.pid


def test_every_platform_process_killed_mid_extraction_then_restarted_resumes_by_itself(
    llm_settings: Settings,
    orchestrator: Orchestrator,
    fake_llm: FakeOpenAI,
    reference_url: str,
) -> None:
    items = synthetic_documents(30)
    expected, chunks = reference_run(llm_settings, reference_url, items, fake_llm)

    platform = KnowledgeUp(llm_settings, free_port()).start()
    try:
        batch_id = orchestrator.submit(items).batch_id
        wait_until(lambda: extraction_underway(fake_llm, chunks), 180, every=0.05)
        killed = platform.kill_all()
        assert any("dagster-webserver" in k for k in killed), killed
        assert any("dagster-daemon" in k for k in killed), killed
        assert any("dagster" in k and "grpc" in k for k in killed), killed  # code servers
        assert any("knowledge_assets.cli worker" in k for k in killed), killed  # run worker
        assert any("valkey-server" in k for k in killed), killed  # the broker
        requests_at_kill = len(fake_llm.requests)
        time.sleep(2)
        assert len(fake_llm.requests) == requests_at_kill, "something survived the kill"
        assert orchestrator.poll(batch_id).state == BatchState.EXTRACTING  # stuck STARTED

        platform = KnowledgeUp(llm_settings, free_port()).start()  # the same start command
        done = orchestrator.wait(batch_id, timeout_s=240)
        assert done.state == BatchState.COMPLETE, done
        assert len(done.runs) >= 2
        assert graph_snapshot(orchestrator.settings) == expected
        assert len(fake_llm.requests) - requests_at_kill < chunks, "finished work was redone"
    finally:
        platform.stop()


def test_a_document_that_crashes_every_attempt_is_quarantined_and_the_rest_completes(
    llm_settings: Settings,
    orchestrator: Orchestrator,
    daemon: DagsterDaemon,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    items = synthetic_documents(6)
    prepared = stages.prepare(items, max_bytes=llm_settings.max_document_bytes)
    chunk_set = stages.chunk(prepared, max_chars=llm_settings.chunk_max_chars)
    poison_doc = prepared.documents[2]
    poison_chunk = next(c for c in chunk_set.chunks if c.document_id == poison_doc.id)
    failpoints = Path(os.environ[ENVIRONMENT])
    arm(failpoints, f"poison.{poison_chunk.sha256[:16]}", ALWAYS)

    done = orchestrator.wait(orchestrator.submit(items).batch_id, timeout_s=300)
    assert done.state == BatchState.COMPLETE, done
    statuses = {d.name: d for d in done.documents}
    assert statuses[poison_doc.name].status == "quarantined"
    assert "given up after 3 failed attempts" in (statuses[poison_doc.name].reason or "")
    assert {d.status for n, d in statuses.items() if n != poison_doc.name} == {"accepted"}
    with get_engine(orchestrator.settings).connect() as connection:
        documents_with_mentions = set(
            connection.execute(sa.select(t.mentions.c.document_id).distinct()).scalars()
        )
    assert documents_with_mentions == {d.id for d in prepared.documents} - {poison_doc.id}


def test_database_restarted_mid_run_completes_with_nothing_lost_or_duplicated(
    tmp_path: Path,
    fake_llm: FakeOpenAI,
    reference_url: str,
    monkeypatch: pytest.MonkeyPatch,
    own_server: EmbeddedPostgres,
    broker_url: str,
) -> None:
    url = own_server.start()
    for key, value in llm_environment(fake_llm).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("KNOWLEDGE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KNOWLEDGE_DATABASE_URL", url)
    own = Settings()
    monkeypatch.setenv("DAGSTER_HOME", str(own.dagster_home))
    items = synthetic_documents(30)
    expected, chunks = reference_run(own, reference_url, items, fake_llm)
    daemon = None
    try:
        with Orchestrator.for_settings(own) as orchestrator:
            daemon = DagsterDaemon(own).start()
            batch_id = orchestrator.submit(items).batch_id
            wait_until(lambda: extraction_underway(fake_llm, chunks), 180, every=0.05)
            postmaster = own_server.pgdata / "postmaster.pid"
            old_pid = postmaster.read_text().split()[0]
            own_server.restart()
            assert postmaster.read_text().split()[0] != old_pid

            done = wait_until(lambda: _terminal(orchestrator, batch_id), 240)
            assert done.state == BatchState.COMPLETE, done
            assert graph_snapshot(orchestrator.settings) == expected
    finally:
        if daemon is not None:
            daemon.stop()
        engine_for(url).dispose()


def _terminal(orchestrator: Orchestrator, batch_id: str) -> BatchStatus | None:
    # Polls may fail for a moment while PostgreSQL is coming back: that is not the answer yet.
    try:
        status = orchestrator.poll(batch_id)
    except sa.exc.OperationalError:
        return None
    return status if status.state.terminal else None
