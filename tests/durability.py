"""What the crash tests share: LLM settings, a reference graph, kill helpers."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import dagster as dg

from knowledge_assets.db.engine import database_url, engine_for, get_engine
from knowledge_assets.instance.home import open_instance
from knowledge_assets.instance.leases import Lease, LeaseStore
from knowledge_assets.orchestration.orchestrator import Orchestrator
from knowledge_assets.pipeline.models import DocumentInput
from knowledge_assets.pipeline.pipeline import ExtractionPipeline
from knowledge_assets.pipeline.store import GraphStore
from knowledge_assets.settings import Settings
from tests.fakes.openai_server import FakeOpenAI
from tests.processes import wait_until

LLM_CONCURRENCY = 2


def llm_environment(fake: FakeOpenAI) -> dict[str, str]:
    """Settings that make extraction slow enough to crash in the middle of, and countable."""
    return {
        "KNOWLEDGE_EXTRACTOR": "llm",
        "KNOWLEDGE_LLM_BASE_URL": fake.base_url,
        "KNOWLEDGE_LLM_CONCURRENCY": str(LLM_CONCURRENCY),
        "KNOWLEDGE_LLM_MAX_RETRIES": "2",
        "KNOWLEDGE_CHUNK_MAX_CHARS": "200",
    }


def reference_snapshot(
    settings: Settings, database_url: str, items: Sequence[DocumentInput]
) -> dict[str, list[tuple[object, ...]]]:
    """The graph the direct pipeline writes for ``items`` in a database of its own: no crash."""
    reference = settings.model_copy(update={"database_url": database_url})
    ExtractionPipeline(reference).run(items)
    return GraphStore(engine_for(database_url)).snapshot()


def reference_run(
    settings: Settings, database_url: str, items: Sequence[DocumentInput], fake: FakeOpenAI
) -> tuple[dict[str, list[tuple[object, ...]]], int]:
    """The reference graph and its number of chunks (one call each to ``fake``, then forgotten).

    Forgotten so that the test counts only the platform's calls to the same fake LLM.
    """
    expected = reference_snapshot(settings, database_url, items)
    chunks = len(fake.requests)
    fake.forget()
    return expected, chunks


@contextlib.contextmanager
def platform_instance(settings: Settings) -> Iterator[dg.DagsterInstance]:
    """The Dagster instance of the platform under the settings' home (the tests' own handle)."""
    with open_instance(settings, database_url(settings)) as instance:
        yield instance


def graph_snapshot(settings: Settings) -> dict[str, list[tuple[object, ...]]]:
    """Every graph table of the settings' database, row by row."""
    return GraphStore(get_engine(settings)).snapshot()


@dataclass
class Kill:
    """A kill -9 of a run worker, and which chunks had been sent to the LLM before it."""

    run_id: str
    pid: int
    texts_before: set[str]
    requests_before: int


def run_lease(settings: Settings, run_id: str, timeout: float = 60) -> Lease:
    """The lease of a run a worker has taken: which node and pool process execute it."""
    leases = LeaseStore(get_engine(settings))
    found = wait_until(lambda: leases.get(run_id), timeout)
    assert isinstance(found, Lease)
    return found


def kill_run_worker(orchestrator: Orchestrator, batch_id: str, fake: FakeOpenAI) -> Kill:
    """SIGKILL the process executing the batch's current run, recording the LLM calls so far."""
    run_id = orchestrator.run_ids(batch_id)[-1]
    lease = run_lease(orchestrator.settings, run_id)
    assert not lease.finished and not lease.revoked
    requests = fake.requests
    os.kill(lease.pid, signal.SIGKILL)
    return Kill(run_id, lease.pid, {r.chunk_text for r in requests}, len(requests))


def redone_calls(fake: FakeOpenAI, kill: Kill) -> int:
    """Calls after the kill for chunks that had already been sent before it."""
    return sum(
        1 for r in fake.requests[kill.requests_before :] if r.chunk_text in kill.texts_before
    )


def extraction_underway(fake: FakeOpenAI, chunks: int, fraction: float = 0.3) -> bool:
    """True once a fraction of the batch's chunks reached the LLM."""
    return len(fake.requests) >= chunks * fraction
