from __future__ import annotations

from pathlib import Path

import pytest

from knowledge_assets.pipeline.ontology import (
    DEFAULT_NAMESPACE,
    OntologyError,
    load_ontology,
    parse_ontology,
)

XSD = "http://www.w3.org/2001/XMLSchema#"

PREFIXES = """\
@prefix ex: <http://example.org/onto#> .
@prefix other: <http://other.org/onto#> .
@prefix ka: <http://knowledge-assets.org/ns#> .
@prefix owl: <http://www.w3.org/2002/07/owl#> .
@prefix rdf: <http://www.w3.org/1999/02/22-rdf-syntax-ns#> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
@prefix skos: <http://www.w3.org/2004/02/skos/core#> .
@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .
"""

SMALL = (
    PREFIXES
    + """
ex:Person a owl:Class ; rdfs:label "Person"@en, "Personne"@fr ; ka:nerLabel "PERSON" .
ex:Company a owl:Class ; skos:altLabel "firm" ; ka:nerLabel "ORG" .
ex:worksFor a owl:ObjectProperty ; rdfs:domain ex:Person ; rdfs:range ex:Company ;
    ka:trigger "Work  For" .
"""
)

EXPECTED_CLASSES = {
    "Person",
    "Organization",
    "Group",
    "Place",
    "Facility",
    "Event",
    "Product",
    "CreativeWork",
    "Law",
    "Language",
    "Date",
    "Quantity",
}

EXPECTED_PROPERTIES = {
    "worksFor",
    "ceoOf",
    "memberOf",
    "locatedIn",
    "bornIn",
    "diedIn",
    "founded",
    "acquired",
    "spouseOf",
    "capitalOf",
    "occurredIn",
    "participantIn",
    "producedBy",
    "eventDate",
    "birthDate",
}


@pytest.fixture(scope="module")
def default():
    return load_ontology()


def test_default_ontology_classes_and_hierarchy(default):
    assert set(default.classes) >= EXPECTED_CLASSES
    assert default.namespace == DEFAULT_NAMESPACE
    assert default.source == "<default>"
    assert default.classes["Facility"].parents == ("Place",)
    assert default.ancestors("Facility") == {"Facility", "Place"}
    assert default.ancestors("Person") == {"Person"}
    assert default.is_subclass("Facility", "Place")
    assert not default.is_subclass("Place", "Facility")
    assert default.compatible("Place", "Facility") and default.compatible("Facility", "Place")
    assert not default.compatible("Person", "Organization")
    assert default.root_of("Facility") == "Place"
    assert default.class_iri("Person") == DEFAULT_NAMESPACE + "Person"
    assert "company" in default.classes["Organization"].synonyms


@pytest.mark.parametrize(
    ("ner_label", "expected"),
    [
        ("PERSON", "Person"),
        ("ORG", "Organization"),
        ("NORP", "Group"),
        ("GPE", "Place"),
        ("LOC", "Place"),
        ("FAC", "Facility"),
        ("EVENT", "Event"),
        ("PRODUCT", "Product"),
        ("WORK_OF_ART", "CreativeWork"),
        ("LAW", "Law"),
        ("LANGUAGE", "Language"),
        ("DATE", "Date"),
        ("TIME", "Date"),
        ("gpe", "Place"),
        ("CARDINAL", "Quantity"),
        ("MONEY", "Quantity"),
        ("NOT_A_LABEL", None),
    ],
)
def test_default_ner_labels(default, ner_label, expected):
    assert default.class_for_ner_label(ner_label) == expected


def test_default_ontology_properties(default):
    assert set(default.properties) >= EXPECTED_PROPERTIES
    works_for = default.properties["worksFor"]
    assert (works_for.kind, works_for.domain, works_for.range) == (
        "object",
        ("Person",),
        ("Organization",),
    )
    assert {"work for", "employ", "join"} <= set(works_for.triggers)
    assert default.properties["memberOf"].range == ("Group", "Organization")
    assert "Place" in default.properties["locatedIn"].domain
    assert "bear in" in default.properties["bornIn"].triggers
    event_date = default.properties["eventDate"]
    assert event_date.kind == "datatype"
    assert XSD + "date" in event_date.range
    assert default.properties["birthDate"].range == (XSD + "date",)
    assert default.property_iri("worksFor") == DEFAULT_NAMESPACE + "worksFor"
    for prop in default.properties.values():
        assert prop.domain and prop.range and prop.triggers, prop.name
        assert all(t == t.lower() for t in prop.triggers), prop.name


def test_default_is_cached_and_graph_is_a_copy(default):
    assert load_ontology() is default
    copy = default.graph()
    size = len(copy)
    copy.remove((None, None, None))
    assert len(default.graph()) == size > 0


def test_parse_reads_labels_synonyms_and_triggers():
    onto = parse_ontology(SMALL)
    assert onto.namespace == "http://example.org/onto#"
    assert onto.classes["Person"].label == "Person"
    assert onto.classes["Company"].label == "Company"
    assert onto.classes["Company"].synonyms == ("firm",)
    assert onto.properties["worksFor"].triggers == ("work for",)
    assert onto.class_for_ner_label("ORG") == "Company"


def test_rdf_property_kind_follows_range():
    text = (
        PREFIXES
        + """
ex:Person a rdfs:Class .
ex:name a rdf:Property ; rdfs:domain ex:Person ; rdfs:range xsd:string .
ex:knows a rdf:Property ; rdfs:domain ex:Person ; rdfs:range ex:Person .
ex:note a rdf:Property .
"""
    )
    onto = parse_ontology(text)
    assert onto.properties["name"].kind == "datatype"
    assert onto.properties["name"].range == (XSD + "string",)
    assert onto.properties["knows"].kind == "object"
    assert onto.properties["note"].kind == "object"
    assert onto.properties["note"].domain == ()


def test_load_from_path(tmp_path):
    path = tmp_path / "small.ttl"
    path.write_text(SMALL, encoding="utf-8")
    onto = load_ontology(path)
    assert onto.source == str(path)
    assert set(onto.classes) == {"Person", "Company"}


def test_hash_is_stable_and_tracks_content(default):
    assert parse_ontology(SMALL).hash == parse_ontology(SMALL).hash
    reformatted = "# a comment\n" + SMALL.replace(" ;\n    ka:trigger", " ; ka:trigger")
    assert parse_ontology(reformatted).hash == parse_ontology(SMALL).hash
    changed = SMALL.replace('"firm"', '"business"')
    assert parse_ontology(changed).hash != parse_ontology(SMALL).hash
    packaged = Path(__file__).parents[1] / "knowledge_assets/pipeline/data/default_ontology.ttl"
    assert parse_ontology(packaged.read_text(encoding="utf-8")).hash == default.hash


DISJOINT = (
    PREFIXES
    + """
ex:Agent a owl:Class .
ex:Person a owl:Class ; rdfs:subClassOf ex:Agent .
ex:Company a owl:Class ; rdfs:subClassOf ex:Agent ; owl:disjointWith ex:Person .
ex:Place a owl:Class .
ex:Airport a owl:Class ; rdfs:subClassOf ex:Place .
ex:Song a owl:Class .
[] a owl:AllDisjointClasses ; owl:members ( ex:Agent ex:Place ) .
other:Outside owl:disjointWith ex:Song .
"""
)


def test_disjointness_is_read_both_ways_and_inherited():
    onto = parse_ontology(DISJOINT)
    assert onto.disjoint("Person", "Company") and onto.disjoint("Company", "Person")
    assert onto.disjoint("Airport", "Person")  # Place and Agent, by AllDisjointClasses
    assert not onto.disjoint("Person", "Agent")
    assert not onto.disjoint("Song", "Person")  # nothing said about songs
    assert not onto.disjoint("Airport", "Place")
    assert dict(onto.disjoint_with)["Agent"] == {"Place"}
    assert "Song" not in onto.disjoint_with  # a statement about an outside class is ignored


BROKEN = {
    "syntax": (
        PREFIXES + "ex:Person a owl:Class .\nex:Oops a \n",
        ["not valid Turtle", "objectList expected", "line 10", "ex:Oops a"],
    ),
    "unbound prefix": ("nope:Person a nope:Class .", ["not valid Turtle", "nope"]),
    "empty": ("   \n", ["empty", "defines no classes"]),
    "no classes": (PREFIXES + "ex:a ex:b ex:c .", ["defines no classes"]),
    "undefined domain": (
        PREFIXES
        + "ex:Person a owl:Class .\n"
        + "ex:worksFor a owl:ObjectProperty ; rdfs:domain ex:Human ; rdfs:range ex:Person .",
        ["worksFor", "rdfs:domain", "http://example.org/onto#Human", "not defined"],
    ),
    "undefined range": (
        PREFIXES
        + "ex:Person a owl:Class .\n"
        + "ex:worksFor a owl:ObjectProperty ; rdfs:domain ex:Person ; rdfs:range ex:Company .",
        ["worksFor", "rdfs:range", "http://example.org/onto#Company", "not defined"],
    ),
    "duplicate name": (
        PREFIXES + "ex:Person a owl:Class .\nother:Person a owl:Class .",
        ["duplicate local name 'Person'"],
    ),
    "class and property share a name": (
        PREFIXES + "ex:Person a owl:Class .\nother:Person a owl:ObjectProperty .",
        ["duplicate local name 'Person'"],
    ),
    "cycle": (
        PREFIXES
        + "ex:A a owl:Class ; rdfs:subClassOf ex:C .\n"
        + "ex:B a owl:Class ; rdfs:subClassOf ex:A .\n"
        + "ex:C a owl:Class ; rdfs:subClassOf ex:B .",
        ["subclass cycle", "A → C → B → A"],
    ),
    "datatype property with class range": (
        PREFIXES
        + "ex:Person a owl:Class .\n"
        + "ex:age a owl:DatatypeProperty ; rdfs:domain ex:Person ; rdfs:range ex:Person .",
        ["age", "not a datatype"],
    ),
    "object property with datatype range": (
        PREFIXES
        + "ex:Person a owl:Class .\n"
        + "ex:age a owl:ObjectProperty ; rdfs:domain ex:Person ; rdfs:range xsd:integer .",
        ["age", "is a datatype, not a class"],
    ),
    "class disjoint with its own superclass": (
        PREFIXES
        + "ex:Place a owl:Class .\n"
        + "ex:Airport a owl:Class ; rdfs:subClassOf ex:Place ; owl:disjointWith ex:Place .",
        ["'Airport'", "disjoint with itself or one of its superclasses"],
    ),
    "anonymous domain": (
        PREFIXES
        + "ex:Person a owl:Class .\n"
        + "ex:p a owl:ObjectProperty ; rdfs:domain [ owl:intersectionOf ( ex:Person ) ] .",
        ["'p'", "anonymous class expression"],
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_ontology_is_refused_with_a_clear_message(case):
    text, fragments = BROKEN[case]
    with pytest.raises(OntologyError) as caught:
        parse_ontology(text, source="broken.ttl")
    message = str(caught.value)
    assert message.startswith("broken.ttl: ")
    for fragment in fragments:
        assert fragment in message


def test_missing_file(tmp_path):
    with pytest.raises(OntologyError, match="not found"):
        load_ontology(tmp_path / "absent.ttl")


def test_directory_is_not_a_file(tmp_path):
    with pytest.raises(OntologyError, match="is a directory"):
        load_ontology(tmp_path)


def test_non_utf8_bytes(tmp_path):
    path = tmp_path / "latin1.ttl"
    path.write_bytes((PREFIXES + 'ex:Café a owl:Class ; rdfs:label "Café" .').encode("latin-1"))
    with pytest.raises(OntologyError) as caught:
        load_ontology(path)
    assert "not UTF-8" in str(caught.value)
    assert "0xe9" in str(caught.value)
    assert "line 9" in str(caught.value)
