"""The living graph on the platform: deletions as Dagster runs, updates, newer versions win.

Every test runs real daemon runs against PostgreSQL and compares the graph and the registry,
row for row (batch ids aside), with a fresh build of what should remain.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from knowledge_assets.db.engine import engine_for, get_engine
from knowledge_assets.failpoints import ENVIRONMENT, arm, fired
from knowledge_assets.orchestration.lifecycle import DeletionState
from knowledge_assets.orchestration.orchestrator import Orchestrator
from knowledge_assets.orchestration.state import BatchState
from knowledge_assets.pipeline.models import DocumentInput
from knowledge_assets.pipeline.pipeline import ExtractionPipeline
from knowledge_assets.pipeline.registry import sync_registry
from knowledge_assets.settings import Settings
from tests.conftest import PROJECT_ROOT
from tests.lifecycle import (
    MARKER,
    Snapshot,
    comparable,
    demo_inputs,
    differences,
    files_containing,
    marked,
    registry_settled,
    tables_containing,
)
from tests.processes import DagsterDaemon, wait_until

A = ["harbor-energy-ceo.txt", "northwind-acquisition.txt", "port-strike.txt"]
B = ["research-lab.txt", "summit-geneva.txt"]


@pytest.fixture
def platform_settings(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    monkeypatch.setenv("DAGSTER_HOME", str(settings.dagster_home))
    monkeypatch.setenv(ENVIRONMENT, str(tmp_path / "failpoints"))
    return Settings()


@pytest.fixture
def orchestrator(platform_settings: Settings) -> Iterator[Orchestrator]:
    with Orchestrator.for_settings(platform_settings) as orchestrator:
        yield orchestrator


@pytest.fixture
def daemon(platform_settings: Settings, orchestrator: Orchestrator) -> Iterator[DagsterDaemon]:
    process = DagsterDaemon(platform_settings).start()
    yield process
    process.stop()


def documents(*names: str) -> list[DocumentInput]:
    corpus = demo_inputs()
    return [corpus[n] for n in names]


def fresh(settings: Settings, url: str, *batches: Sequence[DocumentInput]) -> Snapshot:
    """The graph and registry a fresh database gets from the batches, run one after the other."""
    reference = ExtractionPipeline(settings.model_copy(update={"database_url": url}))
    for items in batches:
        reference.run(items)
        sync_registry(reference.engine, reference.ontology)
    return comparable(engine_for(url))


def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """The ``knowledge`` command as a user runs it, under the test's home and database."""
    return subprocess.run(
        [sys.executable, "-m", "knowledge_assets.cli", *args],
        env=dict(os.environ),
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def complete(orchestrator: Orchestrator, items: Sequence[DocumentInput]) -> str:
    batch_id = orchestrator.submit(items).batch_id
    done = orchestrator.wait(batch_id, timeout_s=300)
    assert done.state == BatchState.COMPLETE, done
    return batch_id


def settle(orchestrator: Orchestrator) -> None:
    """Wait for the registry to hold the graph as it is (the automation merges or replays)."""
    wait_until(lambda: registry_settled(get_engine(orchestrator.settings)), 180, every=0.5)


def forgotten_everywhere(settings: Settings) -> None:
    """The marker is in no stored file, no table of the database, no export."""
    assert files_containing(settings.home, MARKER) == []
    assert tables_containing(get_engine(settings), MARKER) == []
    for fmt in ("ttl", "jsonld", "mentions"):
        exported = cli(settings, "export", "--format", fmt)
        assert exported.returncode == 0, exported.stderr
        assert MARKER not in exported.stdout, fmt


def test_knowledge_delete_of_b_leaves_a_fresh_build_of_a_and_forgets_the_marker(
    platform_settings: Settings,
    orchestrator: Orchestrator,
    daemon: DagsterDaemon,
    reference_url: str,
) -> None:
    a = documents(*A)
    b = [*documents(*B), marked("He works for Harbor Energy in Rotterdam.")]
    complete(orchestrator, a + b)
    settle(orchestrator)
    assert tables_containing(get_engine(platform_settings), MARKER)  # it was there

    done = cli(platform_settings, "delete", *(d.name for d in b), "--json")
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout.splitlines()[-1])
    assert status["state"] == "complete", status
    assert status["documents"] == sorted(d.name for d in b)
    assert status["counts"]["rows_retracted"] > 0
    assert status["counts"]["blobs_forgotten"] == len(b)
    assert status["counts"]["cache_entries_forgotten"] > 0

    got, expected = comparable(get_engine(platform_settings)), fresh(
        platform_settings, reference_url, a
    )
    assert got == expected, differences(got, expected)
    forgotten_everywhere(platform_settings)

    again = cli(platform_settings, "delete", b[0].name, "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout.splitlines()[-1])["deletion_id"] == status["deletion_id"]
    unknown = cli(platform_settings, "delete", "no-such-document.txt")
    assert unknown.returncode == 2
    assert "no document named 'no-such-document.txt' was ever submitted" in unknown.stderr
    assert comparable(get_engine(platform_settings)) == got


def deletion_survives_a_kill(
    settings: Settings,
    orchestrator: Orchestrator,
    reference_url: str,
    point: str,
) -> None:
    """Delete B with the run worker killed (-9) at ``point``; the retry finishes the job."""
    a = documents(*A)
    b = [*documents(*B), marked("He works for Harbor Energy in Rotterdam.")]
    complete(orchestrator, a + b)
    failpoints = Path(os.environ[ENVIRONMENT])
    arm(failpoints, point)
    status = orchestrator.delete([d.name for d in b])
    done = orchestrator.wait_deletion(status.deletion_id, timeout_s=300)
    assert fired(failpoints, point), point
    assert done.state == DeletionState.COMPLETE, done
    assert len(done.runs) >= 2, "the killed deletion run was retried from failure"
    got, expected = comparable(get_engine(settings)), fresh(settings, reference_url, a)
    assert got == expected, differences(got, expected)
    forgotten_everywhere(settings)


def test_a_deletion_killed_between_its_commit_and_forgetting_the_files_finishes(
    platform_settings: Settings,
    orchestrator: Orchestrator,
    daemon: DagsterDaemon,
    reference_url: str,
) -> None:
    deletion_survives_a_kill(
        platform_settings, orchestrator, reference_url, "document_deletions.forget"
    )


@pytest.mark.slow
@pytest.mark.parametrize("point", ["document_deletions.start", "document_deletions.commit"])
def test_a_deletion_killed_anywhere_finishes(
    platform_settings: Settings,
    orchestrator: Orchestrator,
    daemon: DagsterDaemon,
    reference_url: str,
    point: str,
) -> None:
    deletion_survives_a_kill(platform_settings, orchestrator, reference_url, point)


def test_an_edited_document_submitted_again_equals_a_fresh_build_with_the_edit(
    platform_settings: Settings,
    orchestrator: Orchestrator,
    daemon: DagsterDaemon,
    reference_url: str,
) -> None:
    original = documents(*A)
    text = original[1].data.decode().replace("Northwind Logistics", "Southwind Freight")
    edited = [original[0], DocumentInput(name=original[1].name, data=text.encode()), original[2]]
    first = complete(orchestrator, original)
    second = complete(orchestrator, edited)
    settle(orchestrator)
    got, expected = comparable(get_engine(platform_settings)), fresh(
        platform_settings, reference_url, edited
    )
    assert got == expected, differences(got, expected)
    old = {d.name: d for d in orchestrator.poll(first).documents}
    assert {d.status for d in old.values()} == {"superseded"}
    assert second in (old[original[1].name].reason or "")


NOTES_1 = DocumentInput(name="notes.txt", data=b"Maria Okafor met Olaf Brandt in Reykjavik.")
NOTES_2 = DocumentInput(name="notes.txt", data=b"Maria Okafor met Ines Varga in Tbilisi.")


def newer_wins(
    settings: Settings, orchestrator: Orchestrator, reference_url: str, *, retried: bool
) -> None:
    """Two versions of notes.txt staged in order; the older batch's run ends last or is retried."""
    older = orchestrator.stage([NOTES_1, *documents(A[0])]).batch_id
    newer = orchestrator.stage([NOTES_2]).batch_id
    failpoints = Path(os.environ[ENVIRONMENT])
    if retried:
        arm(failpoints, "ingested_graph.start")
        orchestrator.start(older)
        wait_until(lambda: fired(failpoints, "ingested_graph.start"), 180)
        orchestrator.start(newer)
    else:
        orchestrator.start(newer)
        assert orchestrator.wait(newer, timeout_s=300).state == BatchState.COMPLETE
        orchestrator.start(older)
    for batch_id in (older, newer):
        assert orchestrator.wait(batch_id, timeout_s=300).state == BatchState.COMPLETE
    settle(orchestrator)
    got = comparable(get_engine(settings))
    expected = fresh(settings, reference_url, documents(A[0]), [NOTES_2])
    assert got == expected, differences(got, expected)
    mentions = cli(settings, "export", "--format", "mentions")
    lines = [json.loads(line) for line in mentions.stdout.splitlines()]
    spans = [(m["doc_id"], m["start"], m["end"]) for m in lines]
    assert len(spans) == len(set(spans)), "every (doc_id, start, end) once"
    notes = {m["text"] for m in lines if m["doc_id"] == "notes.txt"}
    assert "Tbilisi" in notes and "Reykjavik" not in notes
    for fmt in ("ttl", "jsonld"):
        exported = cli(settings, "export", "--format", fmt).stdout
        assert "Tbilisi" in exported and "Reykjavik" not in exported, fmt
    statuses = {d.name: d.status for d in orchestrator.poll(older).documents}
    assert statuses == {"notes.txt": "superseded", A[0]: "accepted"}


def test_the_newer_version_wins_when_the_older_runs_last(
    platform_settings: Settings,
    orchestrator: Orchestrator,
    daemon: DagsterDaemon,
    reference_url: str,
) -> None:
    newer_wins(platform_settings, orchestrator, reference_url, retried=False)


def test_the_newer_version_wins_when_the_older_run_is_retried(
    platform_settings: Settings,
    orchestrator: Orchestrator,
    daemon: DagsterDaemon,
    reference_url: str,
) -> None:
    newer_wins(platform_settings, orchestrator, reference_url, retried=True)
