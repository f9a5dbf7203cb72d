"""A crash at a random point of every stage: zero lost documents, zero duplicate facts.

Failpoints (``knowledge_assets/failpoints.py``) put a SIGKILL of the run worker exactly inside the
chosen stage, which an external kill cannot do for stages that last milliseconds. One trial per
stage runs in ``make test``; ``make test-slow`` runs several more with other random points.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from knowledge_assets.db.admin import create_database, drop_database
from knowledge_assets.db.engine import engine_for, get_engine
from knowledge_assets.failpoints import ENVIRONMENT, arm, fired
from knowledge_assets.orchestration.orchestrator import Orchestrator
from knowledge_assets.orchestration.state import BatchState
from knowledge_assets.pipeline.pipeline import ExtractionPipeline
from knowledge_assets.pipeline.progress import STAGES
from knowledge_assets.pipeline.store import GraphStore
from knowledge_assets.settings import Settings
from tests.corpus import synthetic_documents
from tests.durability import llm_environment
from tests.fakes.openai_server import FakeOpenAI
from tests.processes import DagsterDaemon

DOCUMENTS = 8


def points(stage: str, chunks: int, rng: random.Random) -> tuple[str, int]:
    """A random failpoint inside ``stage`` and the hit on which it fires."""
    choices = [f"{stage}.start", f"{stage}.end"]
    if stage == "extractions":
        choices.append("extractions.chunk")
    if stage == "ingested_graph":
        choices.append("ingested_graph.commit")
    name = rng.choice(choices)
    return name, rng.randint(1, chunks) if name == "extractions.chunk" else 1


@pytest.fixture
def harness(
    settings: Settings, admin_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Orchestrator, Settings, FakeOpenAI, Path, str]]:
    failpoints = tmp_path / "failpoints"
    failpoints.mkdir()
    with FakeOpenAI() as fake:
        for key, value in llm_environment(fake).items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("DAGSTER_HOME", str(settings.dagster_home))
        monkeypatch.setenv(ENVIRONMENT, str(failpoints))
        reference = create_database(admin_url)
        llm = Settings()
        with Orchestrator.for_settings(llm) as orchestrator:
            daemon = DagsterDaemon(llm).start()
            try:
                yield orchestrator, llm, fake, failpoints, reference
            finally:
                daemon.stop()
        engine_for(reference).dispose()
        drop_database(reference)


def crash_trials(
    harness: tuple[Orchestrator, Settings, FakeOpenAI, Path, str], trials: int, seed: int
) -> None:
    orchestrator, llm, _fake, failpoints, reference_url = harness
    rng = random.Random(seed)
    reference = ExtractionPipeline(llm.model_copy(update={"database_url": reference_url}))
    for trial in range(trials):
        for index, stage in enumerate(STAGES):
            items = synthetic_documents(DOCUMENTS + 100 * trial + index)[-DOCUMENTS:]
            expected = reference.run(items)
            name, hit = points(stage, expected.chunks, rng)
            arm(failpoints, name, hit)
            batch_id = orchestrator.submit(items).batch_id
            done = orchestrator.wait(batch_id, timeout_s=180)
            where = f"trial {trial}, crash at {name} (hit {hit}), seed {seed}"
            assert fired(failpoints, name), where
            assert done.state == BatchState.COMPLETE, (where, done)
            assert len(done.runs) >= 2, where
            assert done.progress.documents == DOCUMENTS, where
            for leftover in failpoints.iterdir():
                leftover.unlink()
    # Every batch exactly once: the crashed store equals the store that never crashed.
    assert (
        GraphStore(get_engine(orchestrator.settings)).snapshot()
        == GraphStore(engine_for(reference_url)).snapshot()
    )


def test_a_crash_in_every_stage_loses_nothing_and_duplicates_nothing(
    harness: tuple[Orchestrator, Settings, FakeOpenAI, Path, str],
) -> None:
    crash_trials(harness, trials=1, seed=random.randrange(1 << 30))


@pytest.mark.slow
def test_many_crashes_in_every_stage(
    harness: tuple[Orchestrator, Settings, FakeOpenAI, Path, str],
) -> None:
    crash_trials(harness, trials=4, seed=random.randrange(1 << 30))
