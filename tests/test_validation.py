from __future__ import annotations

import json

import pytest
from rdflib import RDF, Literal, URIRef
from rdflib.namespace import SH

from knowledge_assets.pipeline.models import Entity, Relation, ResolvedGraph, stable_id
from knowledge_assets.pipeline.ontology import DEFAULT_NAMESPACE, load_ontology
from knowledge_assets.pipeline.rdf import entity_iri, graph_to_rdf, to_jsonld, to_turtle
from knowledge_assets.pipeline.validation import (
    ShapesError,
    build_shapes,
    load_shapes,
    validate_graph,
)

NEWS = DEFAULT_NAMESPACE


def entity(entity_id: str, name: str, *types: str) -> Entity:
    return Entity(id=entity_id, canonical_name=name, types=types, aliases=(name,), mention_ids=())


ENTITIES = (
    entity("ada", "Ada Lovelace", "Person"),
    entity("acme", "ACME Corp", "Organization"),
    entity("paris", "Paris", "Place"),
    entity("jfk", "JFK Airport", "Facility"),
    entity("nyc", "New York", "Place"),
    entity("summit", "G7 Summit", "Event"),
)


def relation(
    relation_id: str,
    subject: str,
    predicate: str,
    obj: str | None = None,
    literal: str | None = None,
) -> Relation:
    return Relation(
        id=relation_id,
        subject_id=subject,
        predicate=predicate,
        object_id=obj,
        object_literal=literal,
        evidence=(),
    )


@pytest.fixture(scope="module")
def ontology():
    return load_ontology()


def run(ontology, *relations: Relation, shapes=None):
    graph = ResolvedGraph(batch_id="b1", entities=ENTITIES, mentions=(), relations=relations)
    validated = validate_graph(graph, ontology, shapes)
    kept = {r.id for r in validated.relations}
    held = {q.subject for q in validated.quarantined}
    assert kept | held == {r.id for r in relations}
    assert not kept & held
    assert validated.entities == ENTITIES
    return validated


def quarantined(validated, relation_id: str):
    (found,) = [q for q in validated.quarantined if q.subject == relation_id]
    return found


def test_valid_relations_pass(ontology):
    validated = run(
        ontology,
        relation("r1", "ada", "worksFor", "acme"),
        relation("r2", "summit", "occurredIn", "paris"),
        relation("r3", "ada", "birthDate", literal="1815-12-10"),
        relation("r4", "summit", "eventDate", literal="sometime in June"),
    )
    assert [r.id for r in validated.relations] == ["r1", "r2", "r3", "r4"]
    assert validated.quarantined == ()
    assert validated.violations == 0


def test_domain_violation_is_quarantined(ontology):
    validated = run(
        ontology,
        relation("ok", "ada", "worksFor", "acme"),
        relation("bad", "paris", "worksFor", "acme"),
    )
    assert [r.id for r in validated.relations] == ["ok"]
    held = quarantined(validated, "bad")
    assert held.kind == "relation"
    assert held.batch_id == "b1"
    assert held.id == stable_id("q", "b1", "relation", "bad")
    assert "worksFor expects its subject to be a Person" in held.reason
    assert "'Paris' (Place)" in held.reason and "'ACME Corp'" in held.reason
    assert held.detail["predicate"] == "worksFor"
    assert held.detail["subject_id"] == "paris"
    assert validated.violations == 1


def test_range_violation_is_quarantined(ontology):
    validated = run(ontology, relation("bad", "ada", "worksFor", "paris"))
    held = quarantined(validated, "bad")
    assert "worksFor expects its object to be an Organization" in held.reason
    assert "'Ada Lovelace' (Person) worksFor 'Paris' (Place)" in held.reason
    assert held.detail["value"] == str(entity_iri("paris"))


def test_union_range_accepts_any_member(ontology):
    validated = run(
        ontology,
        relation("ok", "ada", "memberOf", "acme"),
        relation("bad", "ada", "memberOf", "paris"),
    )
    assert [r.id for r in validated.relations] == ["ok"]
    assert "a Group or an Organization" in quarantined(validated, "bad").reason


def test_bad_literal_is_quarantined(ontology):
    validated = run(ontology, relation("bad", "ada", "birthDate", literal="December 1815"))
    held = quarantined(validated, "bad")
    assert "birthDate expects a literal value of datatype xsd:date" in held.reason
    assert "'December 1815'" in held.reason


def test_subclass_satisfies_superclass_domain_and_range(ontology):
    validated = run(
        ontology,
        relation("r1", "jfk", "locatedIn", "nyc"),
        relation("r2", "acme", "locatedIn", "jfk"),
    )
    assert {r.id for r in validated.relations} == {"r1", "r2"}


@pytest.mark.parametrize(
    ("bad", "fragment"),
    [
        (relation("bad", "ada", "likes", "acme"), "unknown predicate 'likes'"),
        (relation("bad", "ghost", "worksFor", "acme"), "subject entity ghost is not in the batch"),
        (relation("bad", "ada", "worksFor", "ghost"), "object entity ghost is not in the batch"),
        (relation("bad", "ada", "worksFor", literal="ACME"), "needs an object entity"),
        (relation("bad", "ada", "birthDate", "acme"), "needs a literal value"),
    ],
)
def test_unstatable_relations_are_quarantined(ontology, bad, fragment):
    validated = run(ontology, bad, relation("ok", "ada", "worksFor", "acme"))
    assert [r.id for r in validated.relations] == ["ok"]
    assert fragment in quarantined(validated, "bad").reason
    assert validated.violations == 0


def test_both_domain_and_range_wrong_gives_one_quarantine(ontology):
    validated = run(ontology, relation("bad", "paris", "worksFor", "nyc"))
    held = quarantined(validated, "bad")
    assert "subject to be a Person" in held.reason and "object to be an Organization" in held.reason
    assert validated.violations == 2


def test_build_shapes_targets_relations_only(ontology):
    shapes = build_shapes(ontology)
    targets = set(shapes.objects(None, SH.targetSubjectsOf))
    assert targets == {URIRef(p.iri) for p in ontology.properties.values()}
    assert not set(shapes.subjects(SH.targetClass, None))
    member_of_range = URIRef("http://knowledge-assets.org/shapes#memberOf-range")
    assert (member_of_range, RDF.type, SH.PropertyShape) in shapes
    assert shapes.value(member_of_range, SH["or"]) is not None


CUSTOM_SHAPES = f"""\
@prefix sh: <http://www.w3.org/ns/shacl#> .
@prefix news: <{NEWS}> .
@prefix ex: <http://example.org/shapes#> .

ex:NoAcquisitions a sh:PropertyShape ;
    sh:targetSubjectsOf news:acquired ;
    sh:path news:acquired ;
    sh:maxCount 0 ;
    sh:message "acquisitions are not accepted in this project" .
"""


def test_custom_shapes_file_replaces_generated_shapes(ontology, tmp_path):
    path = tmp_path / "shapes.ttl"
    path.write_text(CUSTOM_SHAPES, encoding="utf-8")
    shapes = load_shapes(path)
    validated = run(
        ontology,
        relation("deal", "acme", "acquired", "acme"),
        relation("loose", "paris", "worksFor", "acme"),
        shapes=shapes,
    )
    assert [r.id for r in validated.relations] == ["loose"]
    held = quarantined(validated, "deal")
    assert "acquisitions are not accepted in this project" in held.reason
    assert "'ACME Corp' (Organization) acquired 'ACME Corp' (Organization)" in held.reason


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        (
            "@prefix sh: <http://www.w3.org/ns/shacl#> .\nex:S a sh:NodeShape .",
            ["not valid Turtle", "line 2", "ex:"],
        ),
        ("@prefix ex: <http://example.org/> .\nex:a ex:b ex:c .", ["defines no SHACL shapes"]),
        (
            CUSTOM_SHAPES.replace("sh:maxCount 0", 'sh:maxCount "none"'),
            ["invalid SHACL shapes", "sh:maxCount", "xsd:integer"],
        ),
        (
            CUSTOM_SHAPES.replace("sh:path news:acquired ;", ""),
            ["invalid SHACL shapes", "NoAcquisitions"],
        ),
    ],
)
def test_broken_shapes_file_is_refused(tmp_path, text, fragments):
    path = tmp_path / "shapes.ttl"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ShapesError) as caught:
        load_shapes(path)
    message = str(caught.value)
    assert message.startswith(str(path))
    for fragment in fragments:
        assert fragment in message


def test_missing_shapes_file(tmp_path):
    with pytest.raises(ShapesError, match="shapes file not found"):
        load_shapes(tmp_path / "absent.ttl")


def test_graph_to_rdf_and_exports(ontology):
    relations = (
        relation("r1", "ada", "worksFor", "acme"),
        relation("r2", "ada", "birthDate", literal="1815-12-10"),
    )
    graph = graph_to_rdf(ENTITIES, relations, ontology)
    ada = entity_iri("ada")
    assert ada == URIRef("http://knowledge-assets.org/entity/ada")
    assert (ada, RDF.type, URIRef(NEWS + "Person")) in graph
    assert (ada, URIRef(NEWS + "worksFor"), entity_iri("acme")) in graph
    birth = graph.value(ada, URIRef(NEWS + "birthDate"))
    assert isinstance(birth, Literal) and birth.datatype is not None
    assert "ont:worksFor entity:acme" in to_turtle(graph)
    document = json.loads(to_jsonld(graph))
    assert document["@context"]["ont"] == NEWS
    assert any(node.get("ont:worksFor") == {"@id": "entity:acme"} for node in document["@graph"])


def test_invalid_shapes_graph_errors_at_validation(ontology, tmp_path):
    path = tmp_path / "shapes.ttl"
    path.write_text(CUSTOM_SHAPES, encoding="utf-8")
    shapes = load_shapes(path)
    node = URIRef("http://example.org/shapes#NoAcquisitions")
    shapes.set((node, SH.maxCount, Literal("none")))
    with pytest.raises(ShapesError, match="SHACL shapes could not be used"):
        run(ontology, relation("deal", "acme", "acquired", "acme"), shapes=shapes)
