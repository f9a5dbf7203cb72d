"""Interrupt, resume and re-run through the orchestrator, against a real daemon and runs."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from knowledge_assets.db.engine import get_engine
from knowledge_assets.orchestration.orchestrator import Orchestrator
from knowledge_assets.orchestration.state import BatchState
from knowledge_assets.pipeline.store import GraphStore
from knowledge_assets.settings import Settings
from tests.corpus import synthetic_documents
from tests.durability import (
    extraction_underway,
    llm_environment,
    platform_instance,
    reference_run,
)
from tests.fakes.openai_server import FakeOpenAI
from tests.processes import DagsterDaemon, wait_until


@pytest.fixture
def platform(
    settings: Settings, fake_llm: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Orchestrator]:
    for key, value in llm_environment(fake_llm).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("DAGSTER_HOME", str(settings.dagster_home))
    llm = Settings()
    with Orchestrator.for_settings(llm) as orchestrator:
        daemon = DagsterDaemon(llm).start()
        try:
            yield orchestrator
        finally:
            daemon.stop()


def test_interrupt_stops_every_call_and_resume_finishes_the_batch(
    platform: Orchestrator, fake_llm: FakeOpenAI, reference_url: str
) -> None:
    items = synthetic_documents(30)
    expected, chunks = reference_run(platform.settings, reference_url, items, fake_llm)

    batch_id = platform.submit(items).batch_id
    wait_until(lambda: extraction_underway(fake_llm, chunks), 120, every=0.05)
    stopped = platform.interrupt(batch_id)
    calls_at_return = len(fake_llm.requests)
    assert stopped.state == BatchState.FAILED
    assert stopped.error == "interrupted"
    assert stopped.failed_stage == "extractions"
    assert stopped.resumable
    time.sleep(3)
    assert len(fake_llm.requests) == calls_at_return, "an extractor call after interrupt returned"
    assert platform.poll(batch_id).state == BatchState.FAILED, "an interrupted batch stays put"

    resumed = platform.resume(batch_id)
    assert resumed.state in (BatchState.EXTRACTING, BatchState.FAILED)  # queued, not yet started
    done = platform.wait(batch_id, timeout_s=180)
    assert done.state == BatchState.COMPLETE, done
    assert done.progress.chunks_reused > 0, "the resumed run reused the checkpointed chunks"
    assert GraphStore(get_engine(platform.settings)).snapshot() == expected
    assert len({r.chunk_text for r in fake_llm.requests}) == chunks


def test_rematerialising_a_finished_batch_three_times_changes_no_row(
    platform: Orchestrator, fake_llm: FakeOpenAI
) -> None:
    batch_id = platform.submit(synthetic_documents(4)).batch_id
    assert platform.wait(batch_id, timeout_s=180).state == BatchState.COMPLETE
    store = GraphStore(get_engine(platform.settings))
    before, calls = store.snapshot(), len(fake_llm.requests)
    for _ in range(3):
        platform.rerun(batch_id)
        wait_until(lambda: _all_finished(platform, batch_id), 180)
    assert len(platform.run_ids(batch_id)) == 4
    assert store.snapshot() == before
    assert len(fake_llm.requests) == calls, "a re-run made extractor calls"
    assert platform.resume(batch_id).state == BatchState.COMPLETE
    assert len(platform.run_ids(batch_id)) == 4, "resume does nothing to a finished batch"


def _all_finished(platform: Orchestrator, batch_id: str) -> bool:
    with platform_instance(platform.settings) as instance:
        runs = [instance.get_run_by_id(r) for r in platform.run_ids(batch_id)]
    return all(run is not None and run.status.value == "SUCCESS" for run in runs)
