"""Crash a batch mid-extraction with kill -9, let the platform recover, compare the graph."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from knowledge_assets.db.admin import create_database, drop_database
from knowledge_assets.db.engine import engine_for
from knowledge_assets.orchestration.orchestrator import Orchestrator
from knowledge_assets.orchestration.state import BatchState
from knowledge_assets.pipeline.store import GraphStore
from knowledge_assets.settings import Settings
from tests.corpus import synthetic_documents
from tests.durability import (
    LLM_CONCURRENCY,
    extraction_underway,
    kill_run_worker,
    llm_environment,
    redone_calls,
    reference_snapshot,
)
from tests.fakes.openai_server import FakeOpenAI
from tests.processes import DagsterDaemon, wait_until


@pytest.fixture
def fake_llm() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(default_delay=0.1) as fake:
        yield fake


@pytest.fixture
def llm_settings(
    settings: Settings, fake_llm: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    for key, value in llm_environment(fake_llm).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("DAGSTER_HOME", str(settings.dagster_home))
    return Settings()


@pytest.fixture
def reference_url(admin_url: str) -> Iterator[str]:
    url = create_database(admin_url)
    yield url
    engine_for(url).dispose()
    drop_database(url)


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
    expected = reference_snapshot(llm_settings, reference_url, items)
    chunks = len(fake_llm.requests)
    del fake_llm._requests[:]  # count only the platform's calls from here on

    batch_id = orchestrator.submit(items).batch_id
    wait_until(lambda: extraction_underway(fake_llm, chunks), 120, every=0.05)
    kill = kill_run_worker(orchestrator, batch_id, fake_llm)

    done = orchestrator.wait(batch_id, timeout_s=240)
    assert done.state == BatchState.COMPLETE, done
    assert len(done.runs) >= 2, "the killed run was retried from failure"
    assert GraphStore(orchestrator.engine).snapshot() == expected
    assert redone_calls(fake_llm, kill) <= LLM_CONCURRENCY
    assert len({r.chunk_text for r in fake_llm.requests}) == chunks
    assert os.getpid() != kill.pid
