"""Each Dagster asset on a small batch: called with ``build_asset_context`` or materialized.

The daemon runs the same assets in tests/test_platform.py; these check each asset's own output,
its ``StageCounts`` metadata and its checks' results in seconds, with the offline extractor.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from functools import cached_property
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa

from knowledge_assets.db import tables as t
from knowledge_assets.db.engine import get_engine
from knowledge_assets.defs.extraction.assets import (
    BATCH_ASSETS,
    chunks,
    documents,
    extractions,
    resolved_entities,
    validated_graph,
)
from knowledge_assets.defs.extraction.checks import NO_QUARANTINE, NO_VIOLATIONS, SPANS_MATCH
from knowledge_assets.defs.extraction.partitions import BATCHES
from knowledge_assets.defs.io_manager import PydanticJsonIOManager
from knowledge_assets.defs.registry.assets import canonical_entities
from knowledge_assets.defs.resources import KnowledgeResource
from knowledge_assets.pipeline import stages
from knowledge_assets.pipeline.batches import BatchStorage
from knowledge_assets.pipeline.extractors.factory import extractor_info
from knowledge_assets.pipeline.models import DocumentInput, Relation, ResolvedGraph, ValidatedGraph
from knowledge_assets.pipeline.ontology import load_ontology
from knowledge_assets.pipeline.pipeline import ExtractionPipeline
from knowledge_assets.pipeline.progress import STAGES, StageCounts
from knowledge_assets.pipeline.store import GraphStore
from knowledge_assets.settings import Settings

CHUNK_MAX_CHARS = 200
TEXTS = {
    "observatory.txt": (
        "Professor Lena Marsh joined the Halvorsen Observatory in Tromso last spring. "
        "Marsh previously worked for Polar Optics, a company based in Bergen. "
        "The observatory studies the northern lights every winter."
    ),
    "ferry.txt": (
        "Fjordway Holdings acquired the ferry operator Nordlys Lines in March. "
        "Fjordway Holdings is headquartered in Oslo."
    ),
    "empty.txt": "",
}
ACCEPTED = {name: text for name, text in TEXTS.items() if text}


def batch_inputs() -> list[DocumentInput]:
    return [DocumentInput(name=name, data=text.encode()) for name, text in TEXTS.items()]


@pytest.fixture
def small(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The test's settings with chunks small enough to split the longer document."""
    monkeypatch.setenv("KNOWLEDGE_CHUNK_MAX_CHARS", str(CHUNK_MAX_CHARS))
    return Settings()


@pytest.fixture
def batch_id(small: Settings) -> str:
    """The three documents staged as one batch, as the inbox sensor or the API stages them."""
    ontology = load_ontology(small.ontology)
    manifest = BatchStorage(small.storage_dir).stage(
        batch_inputs(),
        max_bytes=small.max_document_bytes,
        ontology_hash=ontology.hash,
        extractor=extractor_info(small, ontology),
    )
    return manifest.batch_id


def split(results: Iterator[Any]) -> tuple[dg.Output, dict[str, dg.AssetCheckResult]]:
    """An asset's output and its check results by check name, from what the asset yielded."""
    output, checks = None, {}
    for item in results:
        if isinstance(item, dg.AssetCheckResult):
            checks[item.check_name] = item
        else:
            output = item
    assert isinstance(output, dg.Output)
    return output, checks


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, dg.MetadataValue) else value


def counts(output: dg.Output) -> StageCounts:
    """The ``StageCounts`` an asset's output reports in its metadata, without its seconds.

    Every stage reports its seconds: checked here, and left out so counts compare exactly.
    """
    found = StageCounts.from_metadata({k: _plain(v) for k, v in (output.metadata or {}).items()})
    return untimed(found)


def untimed(found: StageCounts) -> StageCounts:
    assert found.seconds is not None and found.seconds >= 0, "every stage reports its seconds"
    return found.model_copy(update={"seconds": None})


def check_metadata(check: dg.AssetCheckResult) -> dict[str, Any]:
    return {k: _plain(v) for k, v in (check.metadata or {}).items()}


class Direct:
    """The batch assets called one after the other with ``build_asset_context``, no run at all.

    Each call receives the previous assets' values as its inputs, as the IO manager would give
    them; ``extractions`` may be called again to see what a second run of it does.
    """

    def __init__(self, batch_id: str) -> None:
        self.batch_id = batch_id
        self.knowledge = KnowledgeResource()

    def context(self) -> dg.AssetExecutionContext:
        return dg.build_asset_context(
            partition_key=self.batch_id, resources={"knowledge": self.knowledge}
        )

    @cached_property
    def documents(self) -> dg.Output:
        return documents(self.context())

    @cached_property
    def chunks(self) -> dg.Output:
        return chunks(knowledge=self.knowledge, documents=self.documents.value)

    def extract(self) -> dg.Output:
        return extractions(self.context(), documents=self.documents.value, chunks=self.chunks.value)

    @cached_property
    def extractions(self) -> dg.Output:
        return self.extract()

    @cached_property
    def resolved(self) -> tuple[dg.Output, dict[str, dg.AssetCheckResult]]:
        return split(
            resolved_entities(
                self.context(),
                documents=self.documents.value,
                chunks=self.chunks.value,
                extractions=self.extractions.value,
            )
        )

    def validate(self, graph: ResolvedGraph) -> tuple[dg.Output, dict[str, dg.AssetCheckResult]]:
        return split(validated_graph(knowledge=self.knowledge, resolved_entities=graph))


@pytest.fixture
def direct(batch_id: str) -> Direct:
    return Direct(batch_id)


def test_documents_decodes_the_partitions_batch_and_counts_the_refused_one(
    direct: Direct,
) -> None:
    prepared: stages.PreparedDocuments = direct.documents.value
    assert {d.name: d.text for d in prepared.documents} == ACCEPTED
    assert [(r.name, r.code) for r in prepared.rejections] == [("empty.txt", "empty")]
    assert counts(direct.documents) == StageCounts(
        documents=2,
        rejected=1,
        documents_deleted=0,
        characters=sum(len(text) for text in ACCEPTED.values()),
    )


def test_chunks_cover_each_document_in_order_with_exact_offsets(direct: Direct) -> None:
    chunk_set: stages.ChunkSet = direct.chunks.value
    texts = {d.id: d.text for d in direct.documents.value.documents}
    per_document: dict[str, list[Any]] = {}
    for chunk in chunk_set.chunks:
        assert chunk.text == texts[chunk.document_id][chunk.start : chunk.end]
        assert len(chunk.text) <= CHUNK_MAX_CHARS
        per_document.setdefault(chunk.document_id, []).append(chunk)
    assert per_document.keys() == texts.keys()
    for document_id, pieces in per_document.items():
        assert [c.index for c in pieces] == list(range(len(pieces)))
        assert all(a.end <= b.start for a, b in itertools.pairwise(pieces))
        covered = "".join(c.text for c in pieces).replace(" ", "")
        assert covered == texts[document_id].replace(" ", "")
    by_name = {d.id: d.name for d in direct.documents.value.documents}
    assert len([c for c in chunk_set.chunks if by_name[c.document_id] == "observatory.txt"]) >= 2
    assert counts(direct.chunks) == StageCounts(chunks=len(chunk_set.chunks))


def test_extractions_call_the_extractor_once_per_chunk_then_serve_the_cache(
    direct: Direct,
) -> None:
    first = direct.extractions
    result: stages.Extractions = first.value
    n_chunks = len(direct.chunks.value.chunks)
    assert [r.chunk_id for r in result.results] == [c.id for c in direct.chunks.value.chunks]
    assert all(r.extraction is not None and not r.from_cache for r in result.results)
    extracted = [r.extraction for r in result.results if r.extraction]
    assert counts(first) == StageCounts(
        chunks=n_chunks,
        extractor_calls=n_chunks,
        cache_hits=0,
        failed_chunks=0,
        prompt_tokens=0,  # a local model counts no tokens
        completion_tokens=0,
        mentions=sum(len(e.mentions) for e in extracted),
        relations=sum(len(e.relations) for e in extracted),
    )
    assert counts(first).mentions and counts(first).relations
    extractor = result.extractor
    assert _plain(first.metadata["extractor"]) == f"{extractor.name} {extractor.version}"

    per_document = {c["document"]: c for c in _plain(first.metadata["cost_by_document"])}
    assert set(per_document) == set(ACCEPTED)
    assert sum(c["extractor_calls"] for c in per_document.values()) == n_chunks
    assert sum(c["chunks"] for c in per_document.values()) == n_chunks

    again = direct.extract()
    assert counts(again) == counts(first).model_copy(
        update={"extractor_calls": 0, "cache_hits": n_chunks}
    )
    assert [r.extraction for r in again.value.results] == [r.extraction for r in result.results]
    assert all(r.from_cache for r in again.value.results)


def test_resolved_entities_merge_names_within_the_batch_and_pass_the_span_check(
    direct: Direct,
) -> None:
    output, checks = direct.resolved
    graph: ResolvedGraph = output.value
    assert graph.batch_id == direct.batch_id
    entity = {e.canonical_name: e for e in graph.entities}
    assert "Marsh" in entity["Lena Marsh"].aliases  # the surname joins the full name
    assert len(entity["Fjordway Holdings"].mention_ids) == 2
    names = {e.id: e.canonical_name for e in graph.entities}
    facts = {
        (names[r.subject_id], r.predicate, names.get(r.object_id or "")) for r in graph.relations
    }
    assert ("Fjordway Holdings", "acquired", "Nordlys Lines") in facts
    assert [(q.kind, q.subject) for q in graph.quarantined] == [("document", "empty.txt")]
    assert counts(output) == StageCounts(
        entities=len(graph.entities),
        mentions=len(graph.mentions),
        relations=len(graph.relations),
        quarantined=1,
    )
    assert set(checks) == {SPANS_MATCH}
    assert checks[SPANS_MATCH].passed
    assert check_metadata(checks[SPANS_MATCH]) == {"mentions": len(graph.mentions), "mismatched": 0}


def test_validated_graph_keeps_valid_facts_and_warns_about_what_it_holds_back(
    direct: Direct,
) -> None:
    resolved: ResolvedGraph = direct.resolved[0].value
    output, checks = direct.validate(resolved)
    graph: ValidatedGraph = output.value
    assert graph.entities == resolved.entities
    assert graph.relations == resolved.relations
    assert counts(output) == StageCounts(
        entities=len(resolved.entities), relations=len(resolved.relations), violations=0,
        quarantined=1,
    )  # fmt: skip
    assert set(checks) == {NO_VIOLATIONS, NO_QUARANTINE}
    assert checks[NO_VIOLATIONS].passed
    assert check_metadata(checks[NO_VIOLATIONS]) == {"violations": 0}
    # The refused empty document is held back: a warning, not a failed run.
    assert not checks[NO_QUARANTINE].passed
    assert checks[NO_QUARANTINE].severity == dg.AssetCheckSeverity.WARN
    assert check_metadata(checks[NO_QUARANTINE]) == {"quarantined": 1, "documents": 1}


def test_validated_graph_quarantines_a_relation_against_the_ontology_and_warns(
    direct: Direct,
) -> None:
    resolved: ResolvedGraph = direct.resolved[0].value
    entity = {e.canonical_name: e for e in resolved.entities}
    # An organisation cannot be born anywhere: bornIn's domain is Person.
    wrong = Relation(
        id="rel_wrong",
        subject_id=entity["Fjordway Holdings"].id,
        predicate="bornIn",
        object_id=entity["Oslo"].id,
        evidence=resolved.relations[0].evidence,
    )
    output, checks = direct.validate(
        resolved.model_copy(update={"relations": (*resolved.relations, wrong)})
    )
    graph: ValidatedGraph = output.value
    assert graph.relations == resolved.relations
    held = [q for q in graph.quarantined if q.kind == "relation"]
    assert [q.subject for q in held] == ["rel_wrong"]
    assert counts(output).violations == graph.violations >= 1
    assert counts(output).quarantined == 2
    assert not checks[NO_VIOLATIONS].passed
    assert checks[NO_VIOLATIONS].severity == dg.AssetCheckSeverity.WARN
    held_back = {"quarantined": 2, "documents": 1, "relations": 1}
    assert check_metadata(checks[NO_QUARANTINE]) == held_back


def materialize_batch(instance: dg.DagsterInstance, batch_id: str) -> dg.ExecuteInProcessResult:
    """The six batch assets of the partition in one run of the instance, as a job run does."""
    if not instance.has_dynamic_partition(BATCHES, batch_id):
        instance.add_dynamic_partitions(BATCHES, [batch_id])
    return dg.materialize(
        BATCH_ASSETS,
        instance=instance,
        resources={"knowledge": KnowledgeResource(), "json_io": PydanticJsonIOManager()},
        partition_key=batch_id,
    )


def recorded_metadata(instance: dg.DagsterInstance, run_id: str) -> dict[str, dict[str, Any]]:
    """Each asset's materialization metadata as the instance's event log stored it."""
    found = {}
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
        assert entry.dagster_event is not None
        materialization = entry.dagster_event.step_materialization_data.materialization
        found[materialization.asset_key.to_user_string()] = {
            k: _plain(v) for k, v in materialization.metadata.items()
        }
    return found


def test_one_run_records_every_stages_counts_and_check_results(
    dagster_instance: dg.DagsterInstance, batch_id: str
) -> None:
    result = materialize_batch(dagster_instance, batch_id)
    assert result.success
    recorded = recorded_metadata(dagster_instance, result.run_id)
    assert list(recorded) == list(STAGES)
    inputs = KnowledgeResource().inputs().metadata()
    for stage, metadata in recorded.items():
        assert {k: metadata[k] for k in inputs} == inputs, stage
        extra = set(metadata) - set(StageCounts.model_fields) - set(inputs)
        per_table = {k for k in metadata if k.startswith(("new_", "retracted_"))}
        assert extra <= {"extractor", "cost_by_document"} | per_table, stage
        assert StageCounts.from_metadata(metadata).seconds is not None, stage
    value = {stage: result.output_for_node(stage) for stage in STAGES}
    graph: ValidatedGraph = value["validated_graph"]
    assert untimed(StageCounts.from_metadata(recorded["documents"])) == StageCounts(
        documents=2,
        rejected=1,
        documents_deleted=0,
        characters=sum(len(text) for text in ACCEPTED.values()),
    )
    assert StageCounts.from_metadata(recorded["chunks"]).chunks == len(value["chunks"].chunks)
    assert StageCounts.from_metadata(recorded["extractions"]).extractor_calls == len(
        value["chunks"].chunks
    )
    assert untimed(StageCounts.from_metadata(recorded["validated_graph"])) == StageCounts(
        entities=len(graph.entities), relations=len(graph.relations), violations=0, quarantined=1
    )
    evaluations = {
        (e.asset_key.to_user_string(), e.check_name): e.passed
        for e in result.get_asset_check_evaluations()
    }
    assert evaluations == {
        ("resolved_entities", SPANS_MATCH): True,
        ("validated_graph", NO_VIOLATIONS): True,
        ("validated_graph", NO_QUARANTINE): False,
    }


def test_ingested_graph_writes_the_batch_once_under_its_run(
    dagster_instance: dg.DagsterInstance, batch_id: str, small: Settings
) -> None:
    store = GraphStore(get_engine(small))
    first = materialize_batch(dagster_instance, batch_id)
    summary: stages.IngestSummary = first.output_for_node("ingested_graph")
    graph: ValidatedGraph = first.output_for_node("validated_graph")
    assert summary.batch_id == batch_id
    assert (summary.entities, summary.relations, summary.quarantined) == (
        len(graph.entities), len(graph.relations), 1,
    )  # fmt: skip
    metadata = recorded_metadata(dagster_instance, first.run_id)["ingested_graph"]
    assert metadata["seconds"] >= 0
    assert {k: v for k, v in metadata.items() if not k.startswith("input_")} == {
        "rows_inserted": sum(summary.inserted.values()),
        "rows_retracted": 0,
        "documents_superseded": 0,
        "seconds": metadata["seconds"],
        **{f"new_{table}": rows for table, rows in summary.inserted.items()},
    }
    stored = store.counts()
    assert metadata["rows_inserted"] == sum(stored.values()) > 0
    assert (stored["documents"], stored["entities"], stored["quarantine"]) == (
        2, len(graph.entities), 1,
    )  # fmt: skip
    rows = store.snapshot()

    again = materialize_batch(dagster_instance, batch_id)
    assert again.output_for_node("ingested_graph").inserted == {}
    assert again.output_for_node("ingested_graph").retracted == {}
    assert recorded_metadata(dagster_instance, again.run_id)["ingested_graph"]["rows_inserted"] == 0
    assert store.snapshot() == rows


def test_canonical_entities_merges_each_new_batch_once(small: Settings) -> None:
    batch = ExtractionPipeline(small).run(batch_inputs())
    resources = {"knowledge": KnowledgeResource()}
    first = dg.materialize([canonical_entities], resources=resources)
    (materialization,) = first.asset_materializations_for_node("canonical_entities")
    metadata = {k: _plain(v) for k, v in materialization.metadata.items()}
    assert metadata.pop("seconds") >= 0  # work accounting, on every materialisation
    with get_engine(small).connect() as connection:
        total = connection.execute(
            sa.select(sa.func.count()).select_from(t.canonical_entities)
        ).scalar_one()
    assert metadata == {
        "new_batches": 1,
        "entities_merged": batch.entities,
        "joined_existing": 0,
        "canonical_created": total,
        "canonical_total": total,
        "replayed": False,
    }
    assert 0 < total <= batch.entities

    second = dg.materialize([canonical_entities], resources=resources)
    (again,) = second.asset_materializations_for_node("canonical_entities")
    metadata = {k: _plain(v) for k, v in again.metadata.items()}
    assert metadata.pop("seconds") >= 0
    assert metadata == {
        "new_batches": 0,
        "entities_merged": 0,
        "joined_existing": 0,
        "canonical_created": 0,
        "canonical_total": total,
        "replayed": False,
    }
