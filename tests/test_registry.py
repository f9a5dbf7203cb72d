"""Cross-batch resolution: one canonical entity per real-world entity, incremental, idempotent."""

from __future__ import annotations

import sqlalchemy as sa

from knowledge_assets.db import tables as t
from knowledge_assets.pipeline.models import DocumentInput
from knowledge_assets.pipeline.pipeline import ExtractionPipeline
from knowledge_assets.pipeline.registry import canonical_of, merge_new_batches
from knowledge_assets.settings import Settings

FIRST = [
    "Angela Merkel met Emmanuel Macron in Berlin on Monday.",
    "Siemens said Angela Merkel would visit its plant in Munich.",
]
SECOND = [
    "Emmanuel Macron flew back to Paris after meeting Merkel.",
    "Angela Merkel praised Siemens for its investment in Berlin.",
]


def _docs(prefix: str, texts: list[str]) -> list[DocumentInput]:
    return [DocumentInput(name=f"{prefix}{i}", data=x.encode()) for i, x in enumerate(texts)]


def _canonical_names(engine: sa.Engine) -> dict[str, int]:
    query = (
        sa.select(t.canonical_entities.c.name, sa.func.count())
        .join(t.canonical_members, t.canonical_members.c.canonical_id == t.canonical_entities.c.id)
        .group_by(t.canonical_entities.c.name)
    )
    with engine.connect() as connection:
        return dict(connection.execute(query).all())


def test_two_batches_share_one_canonical_entity_each(settings: Settings) -> None:
    pipeline = ExtractionPipeline(settings)
    first = pipeline.run(_docs("a", FIRST))
    second = pipeline.run(_docs("b", SECOND))
    assert first.batch_id != second.batch_id
    report = merge_new_batches(pipeline.engine, pipeline.ontology)
    assert sorted(report.batches) == sorted([first.batch_id, second.batch_id])
    names = _canonical_names(pipeline.engine)
    for name in ("Angela Merkel", "Emmanuel Macron", "Berlin", "Siemens"):
        assert sum(1 for n in names if name in n or n in name) == 1, (name, names)
    members = canonical_of(pipeline.engine)
    assert len(set(members.values())) == len(names)


def test_running_again_with_nothing_new_changes_nothing(settings: Settings) -> None:
    pipeline = ExtractionPipeline(settings)
    pipeline.run(_docs("a", FIRST))
    merge_new_batches(pipeline.engine, pipeline.ontology)
    before = canonical_of(pipeline.engine)
    report = merge_new_batches(pipeline.engine, pipeline.ontology)
    assert report.batches == []
    assert report.entities == 0
    assert canonical_of(pipeline.engine) == before


def test_a_new_batch_reads_only_its_new_entities(settings: Settings) -> None:
    pipeline = ExtractionPipeline(settings)
    pipeline.run(_docs("a", FIRST))
    merge_new_batches(pipeline.engine, pipeline.ontology)
    known = canonical_of(pipeline.engine)
    second = pipeline.run(_docs("b", SECOND))
    report = merge_new_batches(pipeline.engine, pipeline.ontology)
    assert report.batches == [second.batch_id]
    with pipeline.engine.connect() as connection:
        in_batch = set(
            connection.execute(
                sa.select(t.mentions.c.entity_id).where(t.mentions.c.batch_id == second.batch_id)
            ).scalars()
        )
    assert report.entities == len(in_batch - set(known))
    merged = canonical_of(pipeline.engine)
    assert in_batch <= set(merged)
    assert all(merged[e] == c for e, c in known.items())
