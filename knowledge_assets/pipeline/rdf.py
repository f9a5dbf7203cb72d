"""Entities and relations as RDF: the graph that SHACL validates and the exports serialise."""

from __future__ import annotations

import json
from collections.abc import Iterable

import rdflib
from rdflib import RDF, RDFS, SKOS, XSD, Literal, Namespace, URIRef
from rdflib.term import XSDToPython

from knowledge_assets.pipeline.models import Entity, Relation
from knowledge_assets.pipeline.ontology import KA, Ontology

__all__ = [
    "ENTITY_NS",
    "ONTOLOGY_PREFIX",
    "add_entity",
    "entity_iri",
    "graph_to_rdf",
    "literal_for",
    "new_graph",
    "relation_triple",
    "to_jsonld",
    "to_turtle",
]

ENTITY_NS = Namespace("http://knowledge-assets.org/entity/")
ONTOLOGY_PREFIX = "ont"

Triple = tuple[URIRef, URIRef, URIRef | Literal]

_PLAIN = frozenset({XSD.string, RDFS.Literal})


def entity_iri(entity_id: str) -> URIRef:
    """The IRI of an entity in exported and validated RDF."""
    return ENTITY_NS[entity_id]


def new_graph(ontology: Ontology) -> rdflib.Graph:
    """An empty graph with our prefixes bound, so serialisations read ``ont:worksFor``."""
    graph = rdflib.Graph(bind_namespaces="core")
    graph.bind(ONTOLOGY_PREFIX, Namespace(ontology.namespace))
    graph.bind("ka", KA)
    graph.bind("skos", SKOS)
    graph.bind("entity", ENTITY_NS)
    return graph


def literal_for(value: str, ontology: Ontology, predicate: str) -> Literal:
    """Type a literal with the first range datatype its text is valid for, else as a plain string.

    A value that fits none of the range datatypes stays a plain string on purpose: SHACL then
    reports it as a datatype violation instead of rdflib storing an ill-typed literal.
    """
    prop = ontology.properties.get(predicate)
    specific = [URIRef(d) for d in prop.range if URIRef(d) not in _PLAIN] if prop else []
    for datatype in specific:
        if _valid_lexical(value, datatype):
            return Literal(value, datatype=datatype)
    return Literal(value)


def _valid_lexical(value: str, datatype: URIRef) -> bool:
    """Whether rdflib can read ``value`` as ``datatype``; unknown datatypes are taken on trust."""
    convert = XSDToPython.get(datatype)
    if convert is None:
        return True
    try:
        convert(value)
    except (ValueError, TypeError, ArithmeticError):
        return False
    return True


def relation_triple(relation: Relation, ontology: Ontology) -> Triple | None:
    """The triple stating a relation, or ``None`` when it has neither object entity nor literal."""
    subject = entity_iri(relation.subject_id)
    predicate = URIRef(ontology.property_iri(relation.predicate))
    if relation.object_id is not None:
        return subject, predicate, entity_iri(relation.object_id)
    if relation.object_literal is not None:
        return (
            subject,
            predicate,
            literal_for(relation.object_literal, ontology, relation.predicate),
        )
    return None


def add_entity(graph: rdflib.Graph, entity: Entity, ontology: Ontology) -> None:
    """Add an entity's types, canonical name and aliases."""
    node = entity_iri(entity.id)
    for type_name in entity.types:
        graph.add((node, RDF.type, URIRef(ontology.class_iri(type_name))))
    graph.add((node, RDFS.label, Literal(entity.canonical_name)))
    for alias in entity.aliases:
        if alias != entity.canonical_name:
            graph.add((node, SKOS.altLabel, Literal(alias)))


def graph_to_rdf(
    entities: Iterable[Entity], relations: Iterable[Relation], ontology: Ontology
) -> rdflib.Graph:
    """Build the RDF graph of a set of entities and the relations between them."""
    graph = new_graph(ontology)
    for entity in entities:
        add_entity(graph, entity, ontology)
    for relation in relations:
        triple = relation_triple(relation, ontology)
        if triple is not None:
            graph.add(triple)
    return graph


def to_turtle(graph: rdflib.Graph) -> str:
    """Serialise a graph as Turtle."""
    return graph.serialize(format="turtle")


def to_jsonld(graph: rdflib.Graph) -> str:
    """Serialise a graph as JSON-LD, compacted with the graph's bound prefixes as its context."""
    context = {prefix: str(ns) for prefix, ns in graph.namespaces() if prefix and prefix != "xml"}
    text = graph.serialize(format="json-ld", context=context, auto_compact=True)
    return json.dumps(json.loads(text), indent=2, ensure_ascii=False, sort_keys=True)
