"""Namesakes, short forms and types: each name resolved as a reader of its own document would.

Every text here is written for these tests. Labels come in two kinds: the ontology classes our
extractors assign ("Person", "Organization") and opaque labels a user gives ``knowledge resolve``
("PER", "ORG"), which the resolver must treat as plain strings.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import pytest
import sqlalchemy as sa

from knowledge_assets.db import tables as t
from knowledge_assets.db.engine import get_engine
from knowledge_assets.pipeline.mention_records import MentionRecord, resolve_records
from knowledge_assets.pipeline.models import Entity, Evidence, Mention
from knowledge_assets.pipeline.ontology import Ontology, load_ontology
from knowledge_assets.pipeline.resolution.ablation import Rule
from knowledge_assets.pipeline.resolution.in_batch import resolve_entities
from knowledge_assets.pipeline.resolution.normalize import normalize_name
from knowledge_assets.settings import Settings

FIRST_NAMES = (
    "Alice", "Bruno", "Clara", "Dieter", "Elena", "Felix", "Greta", "Hugo", "Ines", "Jonas",
    "Karla", "Lukas", "Marta", "Nils", "Olga", "Peter", "Rosa", "Stefan", "Tilda", "Uwe",
)  # fmt: skip

Item = tuple[str, str, str]
"""(document, text, label) of one mention."""

TAGGED = ("Person", "Organization")
OPAQUE = ("PER", "ORG")


@pytest.fixture(scope="module")
def ontology() -> Ontology:
    return load_ontology()


def mentions(items: Sequence[Item]) -> list[Mention]:
    """Mentions at made-up but distinct offsets, in the order given."""
    found = []
    for n, (document, text, label) in enumerate(items):
        evidence = Evidence(
            document_id=document, chunk_id=document, start=100 * n, end=100 * n + len(text),
            batch_id="b_namesakes", extractor="test", extractor_version="1",
        )  # fmt: skip
        found.append(
            Mention(
                id=f"men_{n:04d}",
                document_id=document,
                chunk_id=document,
                start=100 * n,
                end=100 * n + len(text),
                text=text,
                label=label,
                evidence=evidence,
            )
        )
    return found


def resolve(
    items: Sequence[Item], ontology: Ontology, without: frozenset[Rule] = frozenset()
) -> tuple[tuple[Entity, ...], dict[tuple[str, str], set[str]]]:
    """The entities, and the entity ids of each (document, text)."""
    entities, linked = resolve_entities(mentions(items), ontology, without=without)
    owner: dict[tuple[str, str], set[str]] = {}
    for m in linked:
        owner.setdefault((m.document_id, m.text), set()).add(str(m.entity_id))
    return entities, owner


def one(owner: dict[tuple[str, str], set[str]], document: str, text: str) -> str:
    (entity,) = owner[document, text]
    return entity


def notes(person: str) -> list[Item]:
    """Twenty short notes, each naming a different Hartmann in full once and then by surname."""
    return [
        item
        for n, first in enumerate(FIRST_NAMES)
        for item in (
            (f"note{n:02d}", f"{first} Hartmann", person),
            (f"note{n:02d}", "Hartmann", person),
        )
    ]


# --- namesakes across documents ------------------------------------------------------------


@pytest.mark.parametrize("labels", [TAGGED, OPAQUE], ids=["tagged", "opaque"])
def test_twenty_notes_in_one_batch_keep_twenty_hartmanns(
    ontology: Ontology, labels: tuple[str, str]
) -> None:
    person, _ = labels
    entities, owner = resolve(notes(person), ontology)
    full = {one(owner, f"note{n:02d}", f"{first} Hartmann") for n, first in enumerate(FIRST_NAMES)}
    assert len(full) == 20
    for n, first in enumerate(FIRST_NAMES):
        document = f"note{n:02d}"
        assert one(owner, document, "Hartmann") == one(owner, document, f"{first} Hartmann")
    assert sorted(len(e.mention_ids) for e in entities) == [2] * 20
    assert {e.canonical_name for e in entities} == {f"{f} Hartmann" for f in FIRST_NAMES}


@pytest.mark.parametrize("labels", [TAGGED, OPAQUE], ids=["tagged", "opaque"])
def test_a_note_that_says_only_hartmann_joins_no_namesake(
    ontology: Ontology, labels: tuple[str, str]
) -> None:
    person, _ = labels
    bare = [("note90", "Hartmann", person), ("note91", "Hartmann", person)]
    _, owner = resolve(notes(person) + bare, ontology)
    full = {one(owner, f"note{n:02d}", f"{first} Hartmann") for n, first in enumerate(FIRST_NAMES)}
    alone = {one(owner, "note90", "Hartmann"), one(owner, "note91", "Hartmann")}
    assert alone.isdisjoint(full)
    assert len(alone) == 2  # two notes that each say only "Hartmann" may mean two people


@pytest.mark.parametrize("labels", [TAGGED, OPAQUE], ids=["tagged", "opaque"])
def test_full_name_and_surname_in_one_document_are_one_person(
    ontology: Ontology, labels: tuple[str, str]
) -> None:
    person, _ = labels
    items = [
        ("letter", "Maria Lindqvist", person),
        ("letter", "Lindqvist", person),
        ("letter", "Ms. Lindqvist", person),
        ("minutes", "Oskar Lindqvist", person),
        ("minutes", "Lindqvist", person),
    ]
    _, owner = resolve(items, ontology)
    maria, oskar = one(owner, "letter", "Maria Lindqvist"), one(owner, "minutes", "Oskar Lindqvist")
    assert maria != oskar
    assert one(owner, "letter", "Lindqvist") == one(owner, "letter", "Ms. Lindqvist") == maria
    assert one(owner, "minutes", "Lindqvist") == oskar


def test_the_batch_decides_a_bare_surname_its_documents_agree_on(ontology: Ontology) -> None:
    # Two reports name the treasurer in full and then by surname; a third says only "Okafor".
    items = [
        ("report1", "Ngozi Okafor", "Person"),
        ("report1", "Okafor", "Person"),
        ("report2", "Ngozi Okafor", "Person"),
        ("report2", "Okafor", "Person"),
        ("report3", "Okafor", "Person"),
    ]
    _, owner = resolve(items, ontology)
    assert one(owner, "report3", "Okafor") == one(owner, "report1", "Ngozi Okafor")


def test_the_more_mentioned_namesake_takes_the_surname(ontology: Ontology) -> None:
    # A reader takes "Varga" to be Edit Varga, named four times; her brother is named once.
    # With the two named once each, "Varga" could be either and stays alone.
    salient = [("mayor", "Edit Varga", "Person")] * 4 + [
        ("mayor", "Tamas Varga", "Person"),
        ("mayor", "Varga", "Person"),
    ]
    tied = [
        ("couple", "Anna Kovac", "Person"),
        ("couple", "Ivan Kovac", "Person"),
        ("couple", "Kovac", "Person"),
    ]
    _, owner = resolve(salient + tied, ontology)
    assert one(owner, "mayor", "Varga") == one(owner, "mayor", "Edit Varga")
    assert one(owner, "couple", "Kovac") not in {
        one(owner, "couple", "Anna Kovac"),
        one(owner, "couple", "Ivan Kovac"),
    }


@pytest.mark.parametrize(
    ("a", "b", "one_entity"),
    [
        ("Anna Hartmann", "Hanna Hartmann", False),
        ("Greta Hartmann", "Grete Hartmann", True),
        ("Harbour City Herons", "Harbor City Herons", True),
        ("Harbour City Herons", "Bay City Herons", False),
    ],
)
def test_full_names_with_one_head_are_told_apart_by_their_other_words(
    ontology: Ontology, a: str, b: str, one_entity: bool
) -> None:
    # Opaque labels: no person rule helps, the words alone decide.
    _, owner = resolve([("d1", a, "PER"), ("d2", b, "PER")], ontology)
    assert (owner["d1", a] == owner["d2", b]) is one_entity


# --- organisations named after people, and type evidence -----------------------------------


@pytest.mark.parametrize("labels", [TAGGED, OPAQUE], ids=["tagged", "opaque"])
def test_a_company_named_after_its_founder(ontology: Ontology, labels: tuple[str, str]) -> None:
    person, organization = labels
    items = [
        ("profile", "Paul Meyer", person),
        ("profile", "Meyer Freight", organization),
        ("profile", "Meyer", person),
        ("profile", "Meyer", person),
        ("tender", "Meyer Freight", organization),
    ]
    _, owner = resolve(items, ontology)
    founder, company = one(owner, "profile", "Paul Meyer"), one(owner, "profile", "Meyer Freight")
    assert founder != company
    assert one(owner, "profile", "Meyer") == founder
    assert one(owner, "tender", "Meyer Freight") == company


def test_one_stray_tag_does_not_drag_a_person_into_a_company(ontology: Ontology) -> None:
    # The founder is quoted as "Meyer" four times; the tagger once called that an organisation.
    items = [
        ("quote", "Meyer Freight", "Organization"),
        ("quote", "Meyer Freight", "Organization"),
        ("quote", "Meyer", "Person"),
        ("quote", "Meyer", "Person"),
        ("quote", "Meyer", "Person"),
        ("quote", "Meyer", "Organization"),
    ]
    entities, owner = resolve(items, ontology)
    assert owner["quote", "Meyer"].isdisjoint(owner["quote", "Meyer Freight"])
    assert all(not {"Person", "Organization"} <= set(e.types) for e in entities)
    # The rule is what keeps them apart: with one stray tag counting, Meyer joins the company.
    _, dragged = resolve(items, ontology, frozenset({Rule.STRAY_TAGS}))
    assert not dragged["quote", "Meyer"].isdisjoint(dragged["quote", "Meyer Freight"])


def test_a_stray_tag_still_counts_towards_a_names_head(ontology: Ontology) -> None:
    items = [
        ("match", "Harbour City Herons", "Organization"),
        ("match", "Herons", "Person"),
        ("match", "Herons", "Person"),
        ("match", "Herons", "Organization"),
    ]
    _, owner = resolve(items, ontology)
    assert owner["match", "Herons"] == owner["match", "Harbour City Herons"]


def test_a_one_word_start_joins_another_documents_name_only_in_a_shared_story(
    ontology: Ontology,
) -> None:
    unrelated = [
        ("summit", "Norland", "ORG"),
        ("summit", "Estmark", "ORG"),
        ("cables", "Norland Telecom", "ORG"),
        ("cables", "Seaway Cable", "ORG"),
    ]
    _, owner = resolve(unrelated, ontology)
    assert owner["summit", "Norland"] != owner["cables", "Norland Telecom"]
    related = [("cables2", "Norland", "ORG"), ("cables2", "Seaway Cable", "ORG"), *unrelated[2:]]
    _, owner = resolve(related, ontology)
    assert owner["cables2", "Norland"] == owner["cables", "Norland Telecom"]


# --- no entity is two disjoint things --------------------------------------------------------

CONFUSED: list[Item] = [
    # A full name and its surname tagged a place; a team mostly tagged a person; one name
    # tagged both ways; a surname tagged an organisation once in one of twenty notes.
    ("film", "Ingrid Solberg", "Person"),
    ("film", "Solberg", "Place"),
    ("film", "Solberg", "Place"),
    ("game", "Harbour City Herons", "Organization"),
    ("game", "Herons", "Person"),
    ("game", "Herons", "Person"),
    ("game", "Herons", "Organization"),
    ("pinup", "Lotte Brandt", "Person"),
    ("pinup", "Lotte Brandt", "Organization"),
    *notes("Person")[:-1],
    ("note19", "Hartmann", "Organization"),
]


def _disjoint_pairs(types: Sequence[str], ontology: Ontology) -> list[tuple[str, str]]:
    return [(a, b) for a, b in combinations(types, 2) if ontology.disjoint(a, b)]


def test_no_resolved_entity_carries_disjoint_types(ontology: Ontology) -> None:
    entities, owner = resolve(CONFUSED, ontology)
    assert all(not _disjoint_pairs(e.types, ontology) for e in entities)
    assert all(ontology.compatible(a, b) for e in entities for a, b in combinations(e.types, 2))
    by_id = {e.id: e for e in entities}
    assert by_id[one(owner, "film", "Ingrid Solberg")].types == ("Person",)
    assert by_id[one(owner, "game", "Harbour City Herons")].types == ("Organization",)
    assert owner["note19", "Hartmann"] == owner["note19", "Uwe Hartmann"]
    assert by_id[one(owner, "note19", "Uwe Hartmann")].types == ("Person",)


def test_the_default_ontology_declares_people_organisations_and_places_disjoint(
    ontology: Ontology,
) -> None:
    assert ontology.disjoint("Person", "Organization")
    assert ontology.disjoint("Organization", "Place")
    assert ontology.disjoint("Facility", "Person")  # inherited from Place
    assert not ontology.disjoint("Facility", "Place")
    assert not ontology.disjoint("Group", "Organization")


# --- the registry: one batch or many, in a real database -------------------------------------


@pytest.fixture
def engine(settings: Settings) -> sa.Engine:
    return get_engine(settings)


def records(items: Sequence[Item], offset: int = 0) -> list[MentionRecord]:
    return [
        MentionRecord(doc, offset + 100 * n, offset + 100 * n + len(text), text, label)
        for n, (doc, text, label) in enumerate(items)
    ]


@pytest.mark.parametrize("batching", ["one batch", "a batch per note"])
def test_the_registry_keeps_the_hartmanns_apart(
    engine: sa.Engine, ontology: Ontology, batching: str
) -> None:
    items = [*notes("PER"), ("note90", "Hartmann", "PER"), ("note91", "Hartmann", "PER")]
    recs = records(items)
    if batching == "one batch":
        canonical = resolve_records(engine, ontology, [recs])
    else:
        by_note: dict[str, list[MentionRecord]] = {}
        for record in recs:
            by_note.setdefault(record.doc_id, []).append(record)
        canonical = resolve_records(engine, ontology, list(by_note.values()))
    of = {(r.doc_id, r.text): canonical[r.id] for r in recs}
    full = {of[f"note{n:02d}", f"{first} Hartmann"] for n, first in enumerate(FIRST_NAMES)}
    assert len(full) == 20
    for n in range(20):
        assert of[f"note{n:02d}", "Hartmann"] == of[f"note{n:02d}", f"{FIRST_NAMES[n]} Hartmann"]
    alone = {of["note90", "Hartmann"], of["note91", "Hartmann"]}
    assert alone.isdisjoint(full)
    if batching == "one batch":
        # Across batches the registry sees only the name "Hartmann" twice (docs/quality.md).
        assert len(alone) == 2


@pytest.mark.parametrize("split", [False, True], ids=["one batch", "two batches"])
def test_no_canonical_carries_disjoint_types(
    engine: sa.Engine, ontology: Ontology, split: bool
) -> None:
    recs = records(CONFUSED)
    half = len(recs) // 2
    canonical = resolve_records(engine, ontology, [recs[:half], recs[half:]] if split else [recs])
    of = {(r.doc_id, r.text): canonical[r.id] for r in recs}
    assert of["film", "Solberg"] == of["film", "Ingrid Solberg"]
    with engine.connect() as connection:
        rows = connection.execute(sa.select(t.canonical_entities.c.types)).scalars().all()
    assert rows and all(not _disjoint_pairs(types, ontology) for types in rows)


# --- spellings of one name -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("U. S. Coast Guard", "U.S. Coast Guard"),
        ("Mt. Hood", "Mount Hood"),
        ("Ft Worth", "Fort Worth"),
    ],
)
def test_spaced_initials_and_abbreviated_words_are_one_spelling(a: str, b: str) -> None:
    assert normalize_name(a) == normalize_name(b)
