"""Cross-batch resolution: the guards, evidence and scores, splits and undo, on real PostgreSQL."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from knowledge_assets.db import tables as t
from knowledge_assets.db.engine import get_engine
from knowledge_assets.pipeline.mention_records import MentionRecord, resolve_records
from knowledge_assets.pipeline.ontology import Ontology, load_ontology
from knowledge_assets.pipeline.registry import (
    canonical_of,
    merge_new_batches,
    rebuild_registry,
    split_entities,
    undo_merge,
)
from knowledge_assets.pipeline.registry.split import SplitError
from knowledge_assets.settings import Settings

Batch = list[tuple[str, str, str]]
"""(document, text, type) of each mention of one batch."""


@pytest.fixture
def engine(settings: Settings) -> sa.Engine:
    return get_engine(settings)


@pytest.fixture(scope="module")
def ontology() -> Ontology:
    return load_ontology()


def records(batch: Batch, offset: int = 0) -> list[MentionRecord]:
    return [
        MentionRecord(doc, offset + 100 * i, offset + 100 * i + len(text), text, kind)
        for i, (doc, text, kind) in enumerate(batch)
    ]


def resolve(engine: sa.Engine, ontology: Ontology, *batches: Batch) -> dict[str, set[str]]:
    """Canonical id -> the texts it holds, after resolving the batches in order."""
    recs = [records(b, 10_000 * n) for n, b in enumerate(batches)]
    canonical = resolve_records(engine, ontology, recs)
    held: dict[str, set[str]] = {}
    for r in (r for batch in recs for r in batch):
        held.setdefault(canonical[r.id], set()).add(r.text)
    return held


def together(held: dict[str, set[str]], *texts: str) -> bool:
    return any(set(texts) <= found for found in held.values())


GUARDED = [
    ("Flight 101", "Flight 102", "Event"),
    ("John Smith", "Jane Smith", "Person"),
    ("Windows 7", "Windows 8", "Product"),
]


@pytest.mark.parametrize(("a", "b", "kind"), GUARDED)
@pytest.mark.parametrize("split", [False, True], ids=["one batch", "two batches"])
def test_guards_keep_names_apart(
    engine: sa.Engine, ontology: Ontology, a: str, b: str, kind: str, split: bool
) -> None:
    first, second = [("d1", a, kind)], [("d2", b, kind)]
    held = (
        resolve(engine, ontology, first, second)
        if split
        else resolve(engine, ontology, first + second)
    )
    assert not together(held, a, b)


@pytest.mark.parametrize("split", [False, True], ids=["one batch", "two batches"])
def test_apple_the_company_is_not_apple_the_fruit(
    engine: sa.Engine, ontology: Ontology, split: bool
) -> None:
    company, fruit = [("d1", "Apple", "Organization")], [("d2", "apple", "Product")]
    batches = (company, fruit) if split else (company + fruit,)
    held = resolve(engine, ontology, *batches)
    assert not together(held, "Apple", "apple")
    with engine.connect() as connection:
        types = set(connection.execute(sa.select(t.canonical_entities.c.root_type)).scalars())
    assert types == {"Organization", "Product"}


@pytest.mark.parametrize("split", [False, True], ids=["one batch", "two batches"])
def test_acronym_and_expansion_merge(engine: sa.Engine, ontology: Ontology, split: bool) -> None:
    short = [("d1", "IBM", "Organization")]
    long = [("d2", "International Business Machines Corp.", "Organization")]
    held = resolve(engine, ontology, *((short, long) if split else (short + long,)))
    assert together(held, "IBM", "International Business Machines Corp.")


CHAIN = [
    ("d1", "John Smith", "Person"),
    ("d2", "J. Smith", "Person"),
    ("d3", "Jane Smith", "Person"),
]
""""J. Smith" fits both ends; John and Jane Smith must never share an entity."""


def test_a_chain_never_joins_incompatible_ends_in_one_batch(
    engine: sa.Engine, ontology: Ontology
) -> None:
    held = resolve(engine, ontology, CHAIN)
    assert not together(held, "John Smith", "Jane Smith")


def test_a_chain_never_joins_incompatible_ends_across_batches(
    engine: sa.Engine, ontology: Ontology
) -> None:
    held = resolve(engine, ontology, *([mention] for mention in CHAIN))
    assert together(held, "John Smith", "J. Smith")
    assert not together(held, "John Smith", "Jane Smith")
    assert not together(held, "J. Smith", "Jane Smith")


def test_a_surname_joins_its_full_name_only_where_a_document_says_so(
    engine: sa.Engine, ontology: Ontology
) -> None:
    first = records([("d1", "Tara Reid", "Person"), ("d1", "Reid", "Person")])
    second = records([("d2", "Reid", "Person"), ("d2", "Oscar", "Person")], 10_000)
    canonical = resolve_records(engine, ontology, [first, second])
    full, bare_there, bare_elsewhere = first[0].id, first[1].id, second[0].id
    assert canonical[bare_there] == canonical[full]
    # No document of the second batch names Tara Reid: its "Reid" may be anyone.
    assert canonical[bare_elsewhere] != canonical[full]


def test_every_merge_has_its_rule_score_and_evidence(engine: sa.Engine, ontology: Ontology) -> None:
    resolve(
        engine,
        ontology,
        [("d1", "International Business Machines", "Organization")],
        [("d2", "IBM", "Organization"), ("d2", "Promises Treatment Center", "Facility")],
        [("d3", "Promises Treatment Centre", "Facility")],
    )
    m, c = t.canonical_members.c, t.canonical_entities.c
    with engine.connect() as connection:
        rows = {r.rule: r for r in connection.execute(sa.select(m.rule, m.score, m.evidence))}
        ibm = connection.execute(
            sa.select(c.name, c.types, c.aliases, c.mention_count, c.members).where(
                c.name == "International Business Machines"
            )
        ).one()
    assert set(rows) == {"new", "acronym", "fuzzy"}
    assert rows["acronym"].score == 1.0
    assert rows["acronym"].evidence["canonical_name"] == "International Business Machines"
    assert 0.9 <= rows["fuzzy"].score < 1.0
    assert rows["fuzzy"].evidence["entity_name"] == "Promises Treatment Centre"
    assert ibm.types == ["Organization"]
    assert set(ibm.aliases) == {"IBM", "International Business Machines"}
    assert (ibm.mention_count, ibm.members) == (2, 2)


def _wrong_merge(engine: sa.Engine, ontology: Ontology) -> tuple[str, str]:
    """Two batches whose people the registry merges; the ids of the two batch entities."""
    resolve(
        engine,
        ontology,
        [("d1", "Michael Jordan", "Person"), ("d1", "Michael Jordan", "Person")],
        [("d2", "Michael B. Jordan", "Person")],
    )
    with engine.connect() as connection:
        query = sa.select(t.entities.c.canonical_name, t.entities.c.id)
        names: dict[str, str] = dict(connection.execute(query).tuples().all())
    owner = canonical_of(engine)
    player, actor = names["Michael Jordan"], names["Michael B. Jordan"]
    assert owner[player] == owner[actor]
    return player, actor


def _mention_canonicals(engine: sa.Engine) -> dict[str, str]:
    owner = canonical_of(engine)
    with engine.connect() as connection:
        rows = connection.execute(sa.select(t.mentions.c.text, t.mentions.c.entity_id))
        return {text: owner[entity] for text, entity in rows.tuples()}


def test_undo_restores_both_entities_and_their_mentions(
    engine: sa.Engine, ontology: Ontology
) -> None:
    player, actor = _wrong_merge(engine, ontology)
    before = canonical_of(engine)[player]
    new = undo_merge(engine, ontology, actor)
    owner = canonical_of(engine)
    assert owner[player] == before and owner[actor] == new != before
    texts = _mention_canonicals(engine)
    assert texts["Michael Jordan"] == before and texts["Michael B. Jordan"] == new
    c, k = t.canonical_entities.c, t.canonical_keys.c
    with engine.connect() as connection:
        rows = {r.id: r for r in connection.execute(sa.select(c.id, c.aliases, c.mention_count))}
        keys = set(connection.execute(sa.select(k.key).where(k.canonical_id == before)).scalars())
    assert rows[before].aliases == ["Michael Jordan"] and rows[before].mention_count == 2
    assert rows[new].aliases == ["Michael B. Jordan"] and rows[new].mention_count == 1
    assert "Person|n:michael b jordan" not in keys


def test_a_rerun_keeps_a_split_apart(engine: sa.Engine, ontology: Ontology) -> None:
    player, actor = _wrong_merge(engine, ontology)
    split_entities(engine, ontology, [actor], reason="different people")
    report = merge_new_batches(engine, ontology)
    assert report.batches == []
    rebuild_registry(engine, ontology)
    owner = canonical_of(engine)
    assert owner[player] != owner[actor]
    resolve(
        engine,
        ontology,
        [("d9", "Michael Jordan", "Person"), ("d9", "Michael B. Jordan", "Person")],
    )
    owner = canonical_of(engine)
    assert owner[player] != owner[actor]


def test_a_split_needs_something_to_split_from(engine: sa.Engine, ontology: Ontology) -> None:
    player, actor = _wrong_merge(engine, ontology)
    with pytest.raises(SplitError, match="nothing to split"):
        split_entities(engine, ontology, [player, actor])
    with pytest.raises(SplitError, match="not in the registry"):
        split_entities(engine, ontology, ["ent_missing"])
