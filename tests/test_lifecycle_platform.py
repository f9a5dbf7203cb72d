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

import dagster as dg
import httpx
import pytest
import sqlalchemy as sa

from knowledge_assets.db import tables as t
from knowledge_assets.db.engine import database_url, engine_for, get_engine
from knowledge_assets.failpoints import ENVIRONMENT, arm, fired
from knowledge_assets.orchestration.lifecycle import DeletionState
from knowledge_assets.orchestration.orchestrator import Orchestrator
from knowledge_assets.orchestration.snapshot import latest_metadata
from knowledge_assets.orchestration.state import BatchState
from knowledge_assets.pipeline.inputs import PipelineInputs, pipeline_inputs
from knowledge_assets.pipeline.models import DocumentInput
from knowledge_assets.pipeline.ontology import load_ontology
from knowledge_assets.pipeline.pipeline import ExtractionPipeline
from knowledge_assets.pipeline.progress import STAGES
from knowledge_assets.pipeline.registry import sync_registry
from knowledge_assets.settings import Settings
from tests.conftest import PROJECT_ROOT
from tests.corpus import synthetic_documents
from tests.durability import llm_environment, platform_instance
from tests.fakes.openai_server import FakeOpenAI, Reply, tokens
from tests.lifecycle import (
    MARKER,
    Snapshot,
    changed_ontology,
    comparable,
    demo_inputs,
    differences,
    dump_containing,
    files_containing,
    marked,
    registry_settled,
    tables_containing,
)
from tests.processes import DagsterDaemon, wait_until
from tests.service.server import ApiServer, auth

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
    """The marker is in no stored file, no table of the database, no dump of it, no export."""
    assert files_containing(settings.home, MARKER) == []
    assert tables_containing(get_engine(settings), MARKER) == []
    assert not dump_containing(database_url(settings), MARKER)
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
    assert dump_containing(database_url(platform_settings), MARKER)

    done = cli(platform_settings, "delete", *(d.name for d in b), "--json")
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout.splitlines()[-1])
    assert status["state"] == "complete", status
    assert status["documents"] == sorted(d.name for d in b)
    assert status["counts"]["rows_retracted"] > 0
    assert status["counts"]["blobs_forgotten"] == len(b)
    assert status["counts"]["cache_entries_forgotten"] > 0

    got, expected = (
        comparable(get_engine(platform_settings)),
        fresh(platform_settings, reference_url, a),
    )
    assert got == expected, differences(got, expected)
    forgotten_everywhere(platform_settings)
    with platform_instance(platform_settings) as instance:
        every_materialisation_has_its_cost(instance)

    again = cli(platform_settings, "delete", b[0].name, "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout.splitlines()[-1])["deletion_id"] == status["deletion_id"]
    unknown = cli(platform_settings, "delete", "no-such-document.txt")
    assert unknown.returncode == 2
    assert "no document named 'no-such-document.txt' was ever submitted" in unknown.stderr
    assert comparable(get_engine(platform_settings)) == got


# What each asset's every materialisation records of its work (docs/lifecycle.md, "Cost").
COST_KEYS = {
    **{stage: {"seconds"} for stage in STAGES},
    "extractions": {"seconds", "extractor_calls", "cache_hits", "prompt_tokens",
                    "completion_tokens", "cost_by_document"},
    "canonical_entities": {"seconds"},
    "document_deletions": {"seconds"},
}  # fmt: skip


def every_materialisation_has_its_cost(instance: dg.DagsterInstance) -> None:
    """Every materialisation of every asset so far (retries, replays, deletions) has its cost."""
    for asset, keys in COST_KEYS.items():
        records = instance.fetch_materializations(dg.AssetKey(asset), limit=10000).records
        assert records, f"{asset} was materialised"
        for record in records:
            materialization = record.asset_materialization
            assert materialization is not None
            assert keys <= set(materialization.metadata), (asset, materialization.partition)


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
    got, expected = (
        comparable(get_engine(platform_settings)),
        fresh(platform_settings, reference_url, edited),
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


@pytest.mark.slow  # make test runs the delayed-older-run variant of the same promise
def test_the_newer_version_wins_when_the_older_run_is_retried(
    platform_settings: Settings,
    orchestrator: Orchestrator,
    daemon: DagsterDaemon,
    reference_url: str,
) -> None:
    newer_wins(platform_settings, orchestrator, reference_url, retried=True)


def test_an_ontology_change_makes_every_batch_stale_and_reprocess_rebuilds_it_fresh(
    platform_settings: Settings,
    orchestrator: Orchestrator,
    reference_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first, second = documents(*A), documents(*B)
    daemon = DagsterDaemon(platform_settings).start()
    try:
        batches = [complete(orchestrator, first), complete(orchestrator, second)]
        settle(orchestrator)
        assert cli(platform_settings, "stale", "--json").stdout.strip() == "[]"
    finally:
        daemon.stop()
    before = _recorded_inputs(orchestrator, batches)

    monkeypatch.setenv("KNOWLEDGE_ONTOLOGY", str(changed_ontology(tmp_path)))
    changed = Settings()
    listed = json.loads(cli(changed, "stale", "--json").stdout)
    assert [s["batch_id"] for s in listed] == batches
    for stale in listed:
        assert set(stale["changed"]) == {"ontology", "shapes"}  # the shapes derive from it
        assert stale["changed"]["ontology"]["recorded"] == before[stale["batch_id"]]["ontology"]

    api = ApiServer(dict(os.environ), changed.home / "logs" / "api.log").start()
    try:
        page = httpx.get(f"{api.url}/batches?stale=true", headers=auth(), timeout=60).json()
    finally:
        api.stop()
    assert sorted(item["batch_id"] for item in page["items"]) == sorted(batches)
    for item in page["items"]:
        assert set(item["stale"]) == {"ontology", "shapes"}
        assert item["stale"]["ontology"]["current"] == changed_inputs(changed)["ontology"]

    daemon = DagsterDaemon(changed).start()
    try:
        done = cli(changed, "reprocess", "--stale", "--json")
        assert done.returncode == 0, done.stderr
        backfill = json.loads(done.stdout.splitlines()[-1])
        assert backfill["state"] == "completed_success", backfill
        assert sorted(backfill["batches"]) == sorted(batches)
        assert cli(changed, "stale", "--json").stdout.strip() == "[]"
        with Orchestrator.for_settings(changed) as now:
            after = _recorded_inputs(now, batches)
            for batch_id in batches:
                status = now.poll(batch_id)
                assert status.stale == {}
                assert status.cost.extractor_calls == 0, "no model call after an ontology change"
                assert status.cost.cache_hits == status.progress.chunks_total > 0
        for batch_id in batches:
            assert after[batch_id]["ontology"] != before[batch_id]["ontology"]
            assert after[batch_id]["ontology"] == changed_inputs(changed)["ontology"]
    finally:
        daemon.stop()
    got, expected = comparable(get_engine(changed)), fresh(changed, reference_url, first, second)
    assert got == expected, differences(got, expected)
    with get_engine(changed).connect() as connection:
        predicates = set(connection.execute(sa.select(t.relations.c.predicate)).scalars())
        types = set(connection.execute(sa.select(t.entity_types.c.type)).scalars())
    assert "acquired" not in predicates and "City" in types


def _recorded_inputs(
    orchestrator: Orchestrator, batches: Sequence[str]
) -> dict[str, dict[str, str]]:
    """The input fingerprints on each batch's partitions, asset by asset (all alike).

    The UI shows each partition's materialization metadata and its data version: both must
    name the inputs, the data version as their combined fingerprint.
    """
    found = {}
    with platform_instance(orchestrator.settings) as instance:
        for batch_id in batches:
            per_stage = [
                PipelineInputs.from_metadata(latest_metadata(instance, stage, batch_id))
                for stage in STAGES
            ]
            assert all(inputs == per_stage[-1] for inputs in per_stage), per_stage
            fingerprint = PipelineInputs.model_validate(per_stage[-1]).fingerprint
            for stage in STAGES:
                version = _data_version(instance, stage, batch_id)
                assert version == fingerprint, (stage, version)
            found[batch_id] = per_stage[-1]
    return found


def _data_version(instance: dg.DagsterInstance, asset: str, partition: str) -> str | None:
    """The data version the UI shows for the partition's latest materialization."""
    result = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition]), limit=1
    )
    materialization = result.records[0].asset_materialization if result.records else None
    # Dagster records a materialization's data version as this tag (its public name).
    tags = materialization.tags if materialization is not None else None
    return (tags or {}).get("dagster/data_version")


def changed_inputs(settings: Settings) -> dict[str, str]:
    """The inputs as configured under ``settings``."""
    return pipeline_inputs(settings, load_ontology(settings.ontology)).model_dump()


def test_cost_on_every_materialisation_and_in_status_and_a_busy_document_is_refused(
    platform_settings: Settings,
    orchestrator: Orchestrator,
    fake_llm: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for key, value in llm_environment(fake_llm).items():
        monkeypatch.setenv(key, value)
    llm = Settings()
    items = synthetic_documents(12)
    fake_llm.script(Reply.hang(20, match="report 11-5."))  # the batch runs while we delete
    with Orchestrator.for_settings(llm) as platform:
        daemon = DagsterDaemon(llm).start()
        try:
            batch_id = platform.submit(items).batch_id
            wait_until(lambda: len(fake_llm.requests) > 0, 120, every=0.05)
            busy = cli(llm, "delete", items[0].name)
            assert platform.poll(batch_id).state == BatchState.EXTRACTING, "still running"
            assert busy.returncode == 2
            assert f"{items[0].name} in batch {batch_id}" in busy.stderr
            assert "being processed" in busy.stderr
            assert platform.wait(batch_id, timeout_s=300).state == BatchState.COMPLETE
        finally:
            daemon.stop()
        status = json.loads(cli(llm, "status", batch_id, "--json").stdout)
    cost = status["cost"]
    sent = sum(tokens(str(m["content"])) + 4 for r in fake_llm.requests for m in r.messages)
    assert cost["extractor_calls"] == status["progress"]["chunks_total"] == len(fake_llm.requests)
    assert cost["prompt_tokens"] == sent > 0
    assert cost["completion_tokens"] > 0
    assert set(cost["seconds"]) == set(STAGES)
    per_document = {d["document"]: d for d in cost["documents"]}
    assert set(per_document) == {i.name for i in items}
    assert sum(d["prompt_tokens"] for d in per_document.values()) == sent
    assert all(d["extractor_calls"] > 0 and d["seconds"] > 0 for d in per_document.values())
    with platform_instance(llm) as instance:
        for stage in STAGES:
            metadata = latest_metadata(instance, stage, batch_id)
            assert metadata["seconds"] >= 0, stage
            assert PipelineInputs.from_metadata(metadata) == changed_inputs(llm), stage
