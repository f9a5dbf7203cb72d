"""Relations keep their direction whatever the voice: active, passive with an agent, or inverse."""

from __future__ import annotations

import pytest

from knowledge_assets.pipeline.extractors.factory import build_extractor
from knowledge_assets.pipeline.extractors.offline import SpacyExtractor
from knowledge_assets.pipeline.ontology import load_ontology
from knowledge_assets.settings import Settings


@pytest.fixture(scope="module")
def extractor() -> SpacyExtractor:
    found = build_extractor(Settings(), load_ontology(None))
    assert isinstance(found, SpacyExtractor)
    return found


def relations(extractor: SpacyExtractor, text: str) -> set[tuple[str, str, str]]:
    extraction = extractor._extract_doc(extractor.nlp(text))
    mentions = extraction.mentions
    return {
        (mentions[r.subject].text, r.predicate, mentions[r.object].text)
        for r in extraction.relations
        if r.object is not None
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # same types on both sides: the voice alone orients the relation
        (
            "Fjordway Holdings acquired Nordlys Lines in March.",
            ("Fjordway Holdings", "acquired", "Nordlys Lines"),
        ),
        (
            "The ferry operator Nordlys Lines was acquired by Fjordway Holdings in March.",
            ("Fjordway Holdings", "acquired", "Nordlys Lines"),
        ),
        ("Peter Brown killed John Smith.", ("Peter Brown", "killed", "John Smith")),
        ("John Smith was killed by Peter Brown.", ("Peter Brown", "killed", "John Smith")),
        # domain and range apart: the types orient it too
        (
            "Ada Lind was hired by Kestrel Systems last year.",
            ("Ada Lind", "worksFor", "Kestrel Systems"),
        ),
        (
            "Kestrel Systems hired Jane Smith last year.",
            ("Jane Smith", "worksFor", "Kestrel Systems"),
        ),
        # a passive without an agent keeps the written order
        ("Marie Curie was born in Warsaw.", ("Marie Curie", "bornIn", "Warsaw")),
    ],
)
def test_the_relation_points_from_its_subject_to_its_object(
    extractor: SpacyExtractor, text: str, expected: tuple[str, str, str]
) -> None:
    found = relations(extractor, text)
    assert expected in found
    assert (expected[2], expected[1], expected[0]) not in found


def test_a_mislabelled_mention_never_turns_a_same_type_relation_around(
    extractor: SpacyExtractor,
) -> None:
    # The small model tags "Caesar" as an organization here: killed(Caesar, Brutus) would fit
    # the property's types backwards, and must not be produced.
    assert ("Caesar", "killed", "Brutus") not in relations(extractor, "Brutus killed Caesar.")


def test_a_trigger_links_its_nearest_argument_not_one_further_away(
    extractor: SpacyExtractor,
) -> None:
    found = relations(
        extractor, "Lena Marsh previously worked for Polar Optics, a company based in Bergen."
    )
    assert ("Polar Optics", "locatedIn", "Bergen") in found
    assert ("Lena Marsh", "locatedIn", "Bergen") not in found


def test_a_mention_that_cannot_take_the_role_does_not_stand_in_the_way(
    extractor: SpacyExtractor,
) -> None:
    found = relations(
        extractor, "Fjordway Holdings, based in Oslo, acquired Nordlys Lines in March."
    )
    assert ("Fjordway Holdings", "acquired", "Nordlys Lines") in found
