"""The orchestrator against a real daemon: start, poll, wait, interrupt, resume by batch id."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from knowledge_assets.demo import corpus_files
from knowledge_assets.orchestration.orchestrator import Orchestrator
from knowledge_assets.orchestration.state import BatchState
from knowledge_assets.pipeline.models import DocumentInput
from knowledge_assets.settings import Settings
from tests.processes import DagsterDaemon


@pytest.fixture
def orchestrator(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Orchestrator]:
    monkeypatch.setenv("DAGSTER_HOME", str(settings.dagster_home))
    with Orchestrator.for_settings(settings) as orchestrator:
        yield orchestrator


@pytest.fixture
def daemon(settings: Settings, orchestrator: Orchestrator) -> Iterator[DagsterDaemon]:
    process = DagsterDaemon(settings).start()
    try:
        yield process
    finally:
        process.stop()


def demo_inputs() -> list[DocumentInput]:
    return [DocumentInput(name=p.name, data=p.read_bytes()) for p in corpus_files()]


def test_submit_runs_the_batch_to_complete(
    orchestrator: Orchestrator, daemon: DagsterDaemon
) -> None:
    submitted = orchestrator.submit(demo_inputs())
    assert submitted.state in (BatchState.PENDING, BatchState.PREPROCESSING)
    again = orchestrator.submit(demo_inputs())
    assert again.batch_id == submitted.batch_id
    done = orchestrator.wait(submitted.batch_id, timeout_s=180)
    assert done.state == BatchState.COMPLETE, done
    assert len(done.runs) == 1
    assert done.progress.chunks_done == done.progress.chunks_total > 0
    assert done.progress.entities > 0
    assert orchestrator.resume(submitted.batch_id).runs == done.runs
