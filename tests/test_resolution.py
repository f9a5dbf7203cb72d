"""In-batch entity resolution: normalisation, the merge cascade, its guards and determinism."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest

from knowledge_assets.pipeline.models import Entity, Evidence, Mention, stable_id
from knowledge_assets.pipeline.ontology import Ontology, load_ontology, parse_ontology
from knowledge_assets.pipeline.resolution.clustering import MAX_CLUSTER_MENTIONS, merge_clusters
from knowledge_assets.pipeline.resolution.evaluate import Scores, b_cubed, pairwise
from knowledge_assets.pipeline.resolution.in_batch import resolve_entities
from knowledge_assets.pipeline.resolution.normalize import (
    acronym_of,
    name_tokens,
    normalize_name,
    numbers_in,
)

# Facility and City both sit under Place but are incompatible with each other.
PLACES_TTL = """
@prefix ex: <http://example.org/places#> .
@prefix owl: <http://www.w3.org/2002/07/owl#> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
<http://example.org/places> a owl:Ontology .
ex:Place a owl:Class .
ex:Facility a owl:Class ; rdfs:subClassOf ex:Place .
ex:City a owl:Class ; rdfs:subClassOf ex:Place .
"""


@pytest.fixture(scope="module")
def ontology() -> Ontology:
    return load_ontology()


def mention(n: int, text: str, label: str, document: str = "doc_a") -> Mention:
    evidence = Evidence(
        document_id=document,
        chunk_id="chk_1",
        start=n,
        end=n + len(text),
        batch_id="b_test",
        extractor="test",
        extractor_version="1",
    )
    return Mention(
        id=f"men_{n:05d}",
        document_id=document,
        chunk_id="chk_1",
        start=n,
        end=n + len(text),
        text=text,
        label=label,
        evidence=evidence,
    )


def mentions(*items: tuple[str, str]) -> list[Mention]:
    return [mention(n, text, label) for n, (text, label) in enumerate(items)]


def groups(entities: Sequence[Entity]) -> set[frozenset[str]]:
    """Each entity as the set of its aliases: what tests compare."""
    return {frozenset(e.aliases) for e in entities}


def together(entities: Sequence[Entity], *names: str) -> bool:
    return any(set(names) <= set(e.aliases) for e in entities)


# --- normalisation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The United Nations", "united nations"),
        ("U.N.", "un"),
        ("Apple Inc.", "apple"),
        ("APPLE INC", "apple"),
        ("The Walt Disney Company", "walt disney"),
        ("Procter & Gamble Co.", "procter and gamble"),
        ("Société Générale S.A.", "societe generale"),
        ("Mr. John Smith", "john smith"),
        ("Dr John  Smith", "john smith"),
        ("Sen. Barack Obama", "barack obama"),
        ("Tara Reid's", "tara reid"),
        ("Tara Reid\u2019s", "tara reid"),
        ("Coca-Cola", "coca cola"),
        ("O'Brien", "obrien"),
        ("Lady Gaga", "lady gaga"),
        ("St. Louis", "st louis"),
        ("The", "the"),
        ("Limited", "limited"),
        ("  ", ""),
    ],
)
def test_normalize_name(text: str, expected: str) -> None:
    assert normalize_name(text) == expected


def test_name_tokens_and_acronyms() -> None:
    assert name_tokens("International Business Machines Corp.") == (
        "international",
        "business",
        "machines",
    )
    assert acronym_of(name_tokens("International Business Machines")) == "ibm"
    assert acronym_of(name_tokens("United Nations")) == "un"
    assert acronym_of(name_tokens("National Aeronautics and Space Administration")) == "nasa"
    assert acronym_of(name_tokens("Department of Justice"), keep_stop_words=True) == "doj"
    assert acronym_of(("paris",)) == ""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Flight 101", {"101"}),
        ("Airbus A320", {"a320"}),
        ("F-16", {"f16"}),
        ("World War II", {"2"}),
        ("WORLD WAR II", {"2"}),
        ("Super Bowl XLIII", {"43"}),
        ("9/11 Commission", {"911"}),
        ("CC Sabathia", set()),
        ("International Business Machines", set()),
    ],
)
def test_numbers_in(text: str, expected: set[str]) -> None:
    assert numbers_in(text) == expected


# --- the cascade -----------------------------------------------------------------------------


def test_exact_normalised_names_merge(ontology: Ontology) -> None:
    entities, linked = resolve_entities(
        mentions(
            ("Apple Inc.", "Organization"), ("APPLE", "Organization"), ("Apple", "Organization")
        ),
        ontology,
    )
    assert groups(entities) == {frozenset({"Apple Inc.", "APPLE", "Apple"})}
    assert {m.entity_id for m in linked} == {entities[0].id}


def test_exact_merge_across_compatible_types(ontology: Ontology) -> None:
    entities, _ = resolve_entities(
        mentions(("Heathrow Airport", "Facility"), ("Heathrow Airport", "Place")), ontology
    )
    assert len(entities) == 1
    assert entities[0].types == ("Facility", "Place")


def test_acronyms_merge_with_their_expansion(ontology: Ontology) -> None:
    entities, _ = resolve_entities(
        mentions(
            ("IBM", "Organization"),
            ("International Business Machines", "Organization"),
            ("UN", "Organization"),
            ("the United Nations", "Organization"),
            ("U.N.", "Organization"),
        ),
        ontology,
    )
    assert groups(entities) == {
        frozenset({"IBM", "International Business Machines"}),
        frozenset({"UN", "the United Nations", "U.N."}),
    }


def test_lower_case_word_is_not_an_acronym(ontology: Ontology) -> None:
    entities, _ = resolve_entities(
        mentions(("Un", "Organization"), ("United Nations", "Organization")), ontology
    )
    assert len(entities) == 2


def test_surname_joins_its_only_full_name(ontology: Ontology) -> None:
    entities, _ = resolve_entities(
        mentions(("John Smith", "Person"), ("Smith", "Person"), ("Mr. Smith", "Person")), ontology
    )
    assert groups(entities) == {frozenset({"John Smith", "Smith", "Mr. Smith"})}
    assert entities[0].canonical_name == "John Smith"


def test_ambiguous_surname_stays_apart(ontology: Ontology) -> None:
    entities, _ = resolve_entities(
        mentions(("John Smith", "Person"), ("Jane Smith", "Person"), ("Smith", "Person")), ontology
    )
    assert groups(entities) == {
        frozenset({"John Smith"}),
        frozenset({"Jane Smith"}),
        frozenset({"Smith"}),
    }


def test_person_titles_and_initials(ontology: Ontology) -> None:
    entities, _ = resolve_entities(
        mentions(
            ("Barack Obama", "Person"),
            ("President Obama", "Person"),
            ("Obama", "Person"),
            ("B. Obama", "Person"),
        ),
        ontology,
    )
    assert len(entities) == 1
    assert entities[0].canonical_name == "Barack Obama"


def test_short_first_name_is_the_same_person(ontology: Ontology) -> None:
    entities, _ = resolve_entities(
        mentions(("Fred LaRue", "Person"), ("Frederick LaRue", "Person"), ("LaRue", "Person")),
        ontology,
    )
    assert len(entities) == 1


def test_fuzzy_merge_above_threshold(ontology: Ontology) -> None:
    # "Treatments" is not a sound-alike spelling of "Treatment": only the threshold decides.
    items = mentions(
        ("Promises Treatment Center", "Facility"), ("Promises Treatments Center", "Facility")
    )
    assert len(resolve_entities(items, ontology)[0]) == 1
    assert len(resolve_entities(items, ontology, threshold=0.99)[0]) == 2


# --- guards ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "label"),
    [
        ("Flight 101", "Flight 102", "Event"),
        ("Windows 7", "Windows 8", "Product"),
        ("Airbus A320", "Airbus A321", "Product"),
        ("World War I", "World War II", "Event"),
        ("John Smith", "Jane Smith", "Person"),
        ("Jan Smith", "Jane Smith", "Person"),
        ("John A. Smith", "John B. Smith", "Person"),
        ("Northern District of California", "Southern District of California", "Organization"),
    ],
)
def test_guards_keep_names_apart(ontology: Ontology, a: str, b: str, label: str) -> None:
    entities, _ = resolve_entities(mentions((a, label), (b, label)), ontology)
    assert groups(entities) == {frozenset({a}), frozenset({b})}


def test_incompatible_types_stay_apart(ontology: Ontology) -> None:
    entities, _ = resolve_entities(
        mentions(("Apple", "Organization"), ("apple", "Product")), ontology
    )
    assert len(entities) == 2
    assert {e.types for e in entities} == {("Organization",), ("Product",)}
    assert len({e.id for e in entities}) == 2


def test_an_outvoted_tag_still_counts_as_evidence_of_type(ontology: Ontology) -> None:
    # "Jaguars" is mostly tagged a person, once an organisation: its name may still meet the
    # organisation "Jacksonville Jaguars". "Apple" and "apple" share no tag and stay apart.
    items = mentions(
        ("Jaguars", "Person"), ("Jaguars", "Person"), ("Jaguars", "Organization"),
        ("Jacksonville Jaguars", "Organization"),
        ("Apple", "Organization"), ("apple", "Product"),
    )  # fmt: skip
    entities, _ = resolve_entities(items, ontology)
    assert together(entities, "Jaguars", "Jacksonville Jaguars")
    assert not together(entities, "Apple", "apple")


def test_no_chain_through_a_compatible_middle() -> None:
    places = parse_ontology(PLACES_TTL)
    items = mentions(("Springfield", "Facility"), ("Springfield", "Place"), ("Springfield", "City"))
    entities, _ = resolve_entities(items, places)
    for entity in entities:
        assert not {"Facility", "City"} <= set(entity.types)
    assert len(entities) == 2
    assert len({e.id for e in entities}) == 2


def test_no_chain_of_near_matches(ontology: Ontology) -> None:
    # Centre~Center and Centre~Centres are close; Center and Centres are not.
    entities, _ = resolve_entities(
        mentions(
            ("Promises Treatment Center", "Facility"),
            ("Promises Treatment Centre", "Facility"),
            ("Promises Treatment Centres", "Facility"),
        ),
        ontology,
    )
    assert not together(entities, "Promises Treatment Center", "Promises Treatment Centres")
    assert len(entities) == 2


def test_initial_between_two_first_names_joins_neither(ontology: Ontology) -> None:
    entities, _ = resolve_entities(
        mentions(("John Smith", "Person"), ("J. Smith", "Person"), ("Jane Smith", "Person")),
        ontology,
    )
    assert len(entities) == 3


def test_merge_clusters_uses_complete_linkage() -> None:
    related = {(0, 1), (1, 2)}
    clusters = merge_clusters([1, 1, 1], [(0, 1), (1, 2)], lambda i, j: (i, j) in related)
    assert clusters == [[0, 1], [2]]


# --- size cap, determinism and ids -----------------------------------------------------------


def test_cluster_size_cap(ontology: Ontology) -> None:
    half = MAX_CLUSTER_MENTIONS // 2 + 1
    items = [mention(n, "Promises Treatment Center", "Facility") for n in range(half)]
    items += [mention(half + n, "Promises Treatment Centre", "Facility") for n in range(half)]
    entities, _ = resolve_entities(items, ontology)
    assert sorted(len(e.mention_ids) for e in entities) == [half, half]


def test_one_name_is_never_split_by_the_cap(ontology: Ontology) -> None:
    items = [mention(n, "Obama", "Person") for n in range(MAX_CLUSTER_MENTIONS + 10)]
    entities, _ = resolve_entities(items, ontology)
    assert len(entities) == 1


MIXED = (
    ("IBM", "Organization"),
    ("International Business Machines", "Organization"),
    ("Apple", "Organization"),
    ("apple", "Product"),
    ("John Smith", "Person"),
    ("Smith", "Person"),
    ("Jane Doe", "Person"),
    ("Doe", "Person"),
    ("Flight 101", "Event"),
    ("Flight 102", "Event"),
    ("Promises Treatment Center", "Facility"),
    ("Promises Treatment Centre", "Place"),
    ("Promises Treatment Centres", "Facility"),
    ("Springfield", "Place"),
    ("springfield", "Place"),
)


def test_order_does_not_matter(ontology: Ontology) -> None:
    items = [mention(n, text, label, f"doc_{n % 3}") for n, (text, label) in enumerate(MIXED * 3)]
    expected = resolve_entities(items, ontology)
    rng = random.Random(42)
    for _ in range(5):
        rng.shuffle(items)
        assert resolve_entities(items, ontology) == expected


def test_output_shape(ontology: Ontology) -> None:
    items = mentions(*MIXED)
    entities, linked = resolve_entities(items, ontology)
    assert [e.id for e in entities] == sorted(e.id for e in entities)
    assert sorted(m.id for m in linked) == sorted(m.id for m in items)
    ids = {e.id for e in entities}
    assert all(m.entity_id in ids for m in linked)
    for entity in entities:
        assert list(entity.aliases) == sorted(set(entity.aliases))
        assert list(entity.mention_ids) == sorted(entity.mention_ids)
        members = {m.id for m in linked if m.entity_id == entity.id}
        assert members == set(entity.mention_ids)


def test_ids_are_deterministic_across_batches(ontology: Ontology) -> None:
    first, _ = resolve_entities(
        mentions(("IBM", "Organization"), ("International Business Machines", "Organization")),
        ontology,
    )
    second, _ = resolve_entities(
        [mention(900, "International Business Machines Corp.", "Organization")], ontology
    )
    expected = stable_id("ent", "Organization", "international business machines")
    assert first[0].id == second[0].id == expected


def test_entity_id_uses_the_root_type(ontology: Ontology) -> None:
    entities, _ = resolve_entities(mentions(("Heathrow Airport", "Facility")), ontology)
    assert entities[0].id == stable_id("ent", "Place", "heathrow airport")


def test_unknown_label_is_its_own_type(ontology: Ontology) -> None:
    entities, _ = resolve_entities(mentions(("Zorg", "Spaceship"), ("Zorg", "Person")), ontology)
    assert len(entities) == 2


def test_empty_batch(ontology: Ontology) -> None:
    assert resolve_entities([], ontology) == ((), ())


# --- evaluation ------------------------------------------------------------------------------


def test_scores_of_a_split_and_a_wrong_merge() -> None:
    gold = {"a": "g1", "b": "g1", "c": "g2"}
    predicted = {"a": "x", "b": "y", "c": "y"}
    # B-cubed: a P=1 R=1/2; b P=1/2 R=1/2; c P=1/2 R=1 -> P = R = 2/3.
    assert b_cubed(gold, predicted) == pytest.approx(Scores(2 / 3, 2 / 3, 2 / 3))
    # Pairs: gold {ab}, predicted {bc}, none right.
    assert pairwise(gold, predicted) == Scores(0.0, 0.0, 0.0)


def test_scores_of_one_big_cluster() -> None:
    gold = {"a": "g1", "b": "g1", "c": "g2", "d": "g2"}
    predicted = dict.fromkeys(gold, "x")
    assert b_cubed(gold, predicted) == pytest.approx(Scores(0.5, 1.0, 2 / 3))
    # 6 predicted pairs, 2 gold pairs, both found.
    assert pairwise(gold, predicted) == pytest.approx(Scores(1 / 3, 1.0, 0.5))


def test_scores_of_a_perfect_and_a_missing_prediction() -> None:
    gold = {"a": "g1", "b": "g1", "c": "g2"}
    assert b_cubed(gold, {"a": "1", "b": "1", "c": "2", "z": "3"}) == Scores(1.0, 1.0, 1.0)
    assert pairwise(gold, {"a": "1", "b": "1", "c": "2"}) == Scores(1.0, 1.0, 1.0)
    # Missing items are singletons: precision stays perfect, recall drops.
    assert b_cubed(gold, {}) == pytest.approx(Scores(1.0, 2 / 3, 0.8))
    assert pairwise(gold, {}) == Scores(1.0, 0.0, 0.0)


# --- the adjudication hook -------------------------------------------------------------------


class RecordingAdjudicator:
    """A stand-in for an LLM judge: answers a fixed verdict and records what it was asked."""

    def __init__(self, verdict: bool | None) -> None:
        self.verdict = verdict
        self.asked: list[tuple[str, str, float]] = []

    def same(self, a: str, b: str, *, label: str, score: float) -> bool | None:
        self.asked.append((a, b, score))
        return self.verdict


UNCERTAIN = (("Grand Central Terminal", "Facility"), ("Grand Central Terminl Station", "Facility"))


def test_uncertain_pairs_stay_apart_without_an_adjudicator(ontology: Ontology) -> None:
    entities, _ = resolve_entities(mentions(*UNCERTAIN), ontology)
    assert len(entities) == 2


@pytest.mark.parametrize(("verdict", "count"), [(True, 1), (False, 2), (None, 2)])
def test_the_adjudicator_decides_the_uncertain_band(
    ontology: Ontology, verdict: bool | None, count: int
) -> None:
    judge = RecordingAdjudicator(verdict)
    entities, _ = resolve_entities(mentions(*UNCERTAIN), ontology, adjudicator=judge)
    assert len(entities) == count
    assert [(a, b) for a, b, _ in judge.asked] == [
        ("grand central terminal", "grand central terminl station")
    ]
    assert 0.8 <= judge.asked[0][2] < 0.9


def test_the_adjudicator_is_not_asked_about_clear_pairs(ontology: Ontology) -> None:
    judge = RecordingAdjudicator(True)
    items = mentions(
        ("Flight 101", "Event"),
        ("Flight 102", "Event"),
        ("IBM", "Organization"),
        ("International Business Machines", "Organization"),
    )
    entities, _ = resolve_entities(items, ontology, adjudicator=judge)
    assert len(entities) == 3
    assert judge.asked == []


# --- names inside spans, parts of names, variants --------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("in Beverly Hills, California", "beverly hills"),
        ("the notorious Gulf of Aden", "gulf of aden"),
        ("Eric Allen Kirkpatrick, 61", "eric allen kirkpatrick"),
        ("into Promises Treatment Center in Los Angeles, California", "promises treatment center"),
        ("IN MILLOM", "millom"),
        ("Internet Explorer 8 (IE8", "internet explorer 8"),
        ("People.com", "people"),
        ('Vincent "The Chin" Gigante', "vincent gigante"),
        ("Turkmenistan - Ashgabat", "turkmenistan"),
        ("Evansville 91-73", "evansville"),
        ("Boeing 747-400", "boeing 747 400"),
        ("apple", "apple"),
    ],
)
def test_the_name_is_cut_out_of_its_span(text: str, expected: str) -> None:
    assert normalize_name(text) == expected


def test_a_part_joins_the_one_longer_name_a_document_names(ontology: Ontology) -> None:
    items = [
        mention(0, "Maurice Cheeks", "Organization", "doc_1"),
        mention(1, "Cheeks", "Organization", "doc_1"),
        mention(2, "Kansas City Chiefs", "Organization", "doc_2"),
        mention(3, "Kansas City", "Organization", "doc_2"),
        mention(4, "Gulf of Aden", "Place", "doc_3"),
        mention(5, "Aden", "Place", "doc_3"),
    ]
    entities, _ = resolve_entities(items, ontology)
    assert together(entities, "Maurice Cheeks", "Cheeks")
    assert together(entities, "Kansas City Chiefs", "Kansas City")
    assert not together(entities, "Gulf of Aden", "Aden")


def test_rival_longer_names_leave_a_part_alone_unless_a_document_decides(
    ontology: Ontology,
) -> None:
    items = [
        mention(0, "Barack Obama", "Organization", "doc_1"),
        mention(1, "Michelle Obama", "Organization", "doc_2"),
        mention(2, "Obama", "Organization", "doc_3"),
        mention(3, "Obama", "Organization", "doc_1"),
    ]
    entities, _ = resolve_entities(items, ontology)
    assert together(entities, "Barack Obama", "Obama")
    assert not together(entities, "Michelle Obama", "Obama")


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Bill Clinton", "William Clinton"),
        ("Bettie Page", "Betty Page"),
        ("W. Mark Felt", "Mark Felt"),
    ],
)
def test_variants_of_a_first_name_are_one_person(ontology: Ontology, a: str, b: str) -> None:
    entities, _ = resolve_entities(mentions((a, "Person"), (b, "Person")), ontology)
    assert len(entities) == 1


def test_an_outvoted_tag_gives_way_but_an_even_split_does_not(ontology: Ontology) -> None:
    items = mentions(
        ("Teixeira", "Person"), ("Teixeira", "Person"), ("Teixeira", "Organization"),
        ("Apple", "Organization"), ("apple", "Product"),
    )  # fmt: skip
    entities, _ = resolve_entities(items, ontology)
    assert groups(entities) == {
        frozenset({"Teixeira"}),
        frozenset({"Apple"}),
        frozenset({"apple"}),
    }
    assert {e.types for e in entities if "Teixeira" in e.aliases} == {("Person",)}
