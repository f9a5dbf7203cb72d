"""SHACL validation of a batch's relations; every relation is kept or quarantined with a reason."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyshacl
import rdflib
from pyshacl.entrypoints import meta_validate
from pyshacl.errors import ReportableRuntimeError
from rdflib import RDF, RDFS, SH, SKOS, XSD, BNode, Literal, Namespace, URIRef
from rdflib.collection import Collection
from rdflib.term import Node

from knowledge_assets.pipeline.models import (
    Entity,
    Quarantined,
    Relation,
    ResolvedGraph,
    ValidatedGraph,
    stable_id,
)
from knowledge_assets.pipeline.ontology import (
    Ontology,
    OntologyError,
    OntologyProperty,
    parse_turtle,
)
from knowledge_assets.pipeline.rdf import entity_iri, new_graph, relation_triple

__all__ = ["SHAPES", "ShapesError", "build_shapes", "load_shapes", "validate_graph"]

SHAPES = Namespace("http://knowledge-assets.org/shapes#")

log = logging.getLogger(__name__)

_Key = tuple[Node | None, ...]
_Findings = dict[str, list[tuple[str, dict[str, str]]]]


class ShapesError(OntologyError):
    """A SHACL shapes file or graph that cannot be used; the message names the problem."""


@dataclass(frozen=True)
class _Result:
    """One SHACL validation result, reduced to what maps it back to relations."""

    focus: Node | None
    path: Node | None
    value: Node | None
    message: str
    shape: Node | None
    severity: Node | None


def build_shapes(ontology: Ontology) -> rdflib.Graph:
    """Derive SHACL shapes from the ontology's property domains and ranges.

    Shapes target only subjects and objects of each property (never whole classes), so validation
    cost grows with the number of relations, not entities.
    """
    shapes = rdflib.Graph(bind_namespaces="core")
    shapes.bind("sh", SH)
    shapes.bind("shape", SHAPES)
    for prop in ontology.properties.values():
        _add_property_shapes(shapes, prop, ontology)
    return shapes


def _add_property_shapes(shapes: rdflib.Graph, prop: OntologyProperty, ontology: Ontology) -> None:
    if prop.domain:
        _add_domain_shape(shapes, prop, ontology)
    _add_range_shape(shapes, prop, ontology)


def _add_domain_shape(shapes: rdflib.Graph, prop: OntologyProperty, ontology: Ontology) -> None:
    node = SHAPES[f"{prop.name}-domain"]
    shapes.add((node, RDF.type, SH.NodeShape))
    shapes.add((node, SH.targetSubjectsOf, URIRef(prop.iri)))
    _add_choice(shapes, node, SH["class"], [URIRef(ontology.class_iri(c)) for c in prop.domain])
    message = f"{prop.name} expects its subject to be {_one_of(prop.domain)}"
    shapes.add((node, SH.message, Literal(message)))


def _add_range_shape(shapes: rdflib.Graph, prop: OntologyProperty, ontology: Ontology) -> None:
    """A property shape on the subjects, so each result names the exact offending value."""
    node = SHAPES[f"{prop.name}-range"]
    shapes.add((node, RDF.type, SH.PropertyShape))
    shapes.add((node, SH.targetSubjectsOf, URIRef(prop.iri)))
    shapes.add((node, SH.path, URIRef(prop.iri)))
    if prop.kind == "object":
        _add_choice(shapes, node, SH["class"], [URIRef(ontology.class_iri(c)) for c in prop.range])
        message = f"{prop.name} expects its object to be {_one_of(prop.range)}"
    elif prop.range:
        _add_choice(shapes, node, SH.datatype, [URIRef(d) for d in prop.range])
        names = [_short(d) for d in prop.range]
        message = f"{prop.name} expects a literal value of datatype {_one_of(names, article=False)}"
    else:
        shapes.add((node, SH.nodeKind, SH.Literal))
        message = f"{prop.name} expects a literal value"
    shapes.add((node, SH.message, Literal(message)))


def _add_choice(
    shapes: rdflib.Graph, node: Node, constraint: URIRef, values: Sequence[URIRef]
) -> None:
    """Add one constraint, or an ``sh:or`` of them when several values are acceptable."""
    if len(values) == 1:
        shapes.add((node, constraint, values[0]))
        return
    if not values:
        return
    options: list[Node] = []
    for value in values:
        option = BNode()
        shapes.add((option, constraint, value))
        options.append(option)
    head = BNode()
    Collection(shapes, head, options)
    shapes.add((node, SH["or"], head))


def _one_of(names: Sequence[str], article: bool = True) -> str:
    def word(name: str) -> str:
        if not article:
            return name
        return f"an {name}" if name[:1].lower() in "aeiou" else f"a {name}"

    words = [word(n) for n in names]
    if len(words) == 1:
        return words[0]
    return f"{', '.join(words[:-1])} or {words[-1]}"


def _short(iri: str) -> str:
    return "xsd:" + iri[len(str(XSD)) :] if iri.startswith(str(XSD)) else iri


def load_shapes(path: Path) -> rdflib.Graph:
    """Load a custom SHACL shapes file (Turtle), refusing files pySHACL would choke on later.

    Raises:
        ShapesError: missing, unreadable, not UTF-8, not Turtle, no shapes, or invalid SHACL.
    """
    source = str(path)
    try:
        shapes = parse_turtle(_read_text(Path(path)), source)
    except ShapesError:
        raise
    except OntologyError as exc:
        raise ShapesError(f"{exc} (SHACL shapes file)") from None
    if not _has_shapes(shapes):
        raise ShapesError(f"{path}: shapes file defines no SHACL shapes")
    _check_meta_shacl(shapes, source)
    return shapes


def _read_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise ShapesError(f"{path}: shapes file not found") from None
    except UnicodeDecodeError as exc:
        raise ShapesError(f"{path}: shapes file is not UTF-8 (byte offset {exc.start})") from None
    except OSError as exc:
        raise ShapesError(f"{path}: cannot read shapes file: {exc.strerror or exc}") from exc


def _has_shapes(shapes: rdflib.Graph) -> bool:
    kinds = (SH.NodeShape, SH.PropertyShape)
    if any(True for kind in kinds for _ in shapes.subjects(RDF.type, kind)):
        return True
    targets = (SH.targetClass, SH.targetNode, SH.targetSubjectsOf, SH.targetObjectsOf)
    return any(True for target in targets for _ in shapes.subject_objects(target))


def _check_meta_shacl(shapes: rdflib.Graph, source: str) -> None:
    """Validate the shapes against SHACL's own shapes (fast), so mistakes surface at load."""
    conforms, report, _ = meta_validate(shapes, inference="none")
    if conforms:
        return
    problems = sorted({_describe_meta(report, r) for r in _result_nodes(report)})
    raise ShapesError(f"{source}: invalid SHACL shapes: {'; '.join(problems)}")


def _describe_meta(report: rdflib.Graph, result: Node) -> str:
    focus = report.value(result, SH.focusNode)
    path = report.value(result, SH.resultPath)
    where = "a blank-node shape" if isinstance(focus, BNode) else f"<{focus}>"
    if isinstance(path, URIRef):
        where += f" {report.namespace_manager.normalizeUri(path)}"
    return f"{where}: {_message(report, result)}"


def validate_graph(
    graph: ResolvedGraph, ontology: Ontology, shapes: rdflib.Graph | None = None
) -> ValidatedGraph:
    """Check every relation against the ontology and SHACL shapes.

    Entities and mentions pass through: extraction already typed them. Each relation ends up in
    either ``relations`` or ``quarantined``, never dropped. ``violations`` counts SHACL results of
    severity ``sh:Violation``; results that name no relation (custom entity-level shapes) are
    counted and logged, since only relations can be quarantined here.

    Raises:
        ShapesError: pySHACL refused the shapes graph.
    """
    entities = {e.id: e for e in graph.entities}
    reasons: _Findings = defaultdict(list)
    checkable = _precheck_all(graph.relations, entities, ontology, reasons)
    shapes = shapes if shapes is not None else build_shapes(ontology)
    results = _run_shacl(_data_graph(checkable, entities, ontology), shapes)
    violations = [r for r in results if r.severity in (SH.Violation, None)]
    index = _RelationIndex(checkable, ontology)
    for result in violations:
        matched = index.match(result, shapes)
        if not matched:
            log.warning("SHACL result names no relation: %s on %s", result.message, result.focus)
        for relation in matched:
            reasons[relation.id].append(_explain(result, relation, entities))
    return ValidatedGraph(
        batch_id=graph.batch_id,
        entities=graph.entities,
        mentions=graph.mentions,
        relations=tuple(r for r in graph.relations if r.id not in reasons),
        quarantined=tuple(
            _quarantine(graph.batch_id, r, reasons[r.id])
            for r in graph.relations
            if r.id in reasons
        ),
        violations=len(violations),
    )


def _precheck_all(
    relations: Iterable[Relation],
    entities: Mapping[str, Entity],
    ontology: Ontology,
    reasons: _Findings,
) -> list[Relation]:
    """Record why relations that cannot be stated in RDF fail; return the ones SHACL judges."""
    checkable: list[Relation] = []
    for relation in relations:
        problem = _precheck(relation, entities, ontology)
        if problem:
            reasons[relation.id].append((problem, _detail(relation)))
        else:
            checkable.append(relation)
    return checkable


def _precheck(relation: Relation, entities: Mapping[str, Entity], ontology: Ontology) -> str:
    """Why a relation cannot even be stated in RDF, or ``""`` when SHACL should judge it."""
    prop = ontology.properties.get(relation.predicate)
    if prop is None:
        return f"unknown predicate '{relation.predicate}': the ontology defines no such property"
    if relation.subject_id not in entities:
        return f"{prop.name}: subject entity {relation.subject_id} is not in the batch"
    if prop.kind == "datatype":
        if relation.object_literal is None or relation.object_id is not None:
            return f"{prop.name} is a datatype property: it needs a literal value, not an entity"
        return ""
    if relation.object_id is None:
        return f"{prop.name} is an object property: it needs an object entity, not a literal"
    if relation.object_literal is not None:
        return f"{prop.name}: relation has both an object entity and a literal value"
    if relation.object_id not in entities:
        return f"{prop.name}: object entity {relation.object_id} is not in the batch"
    return ""


def _data_graph(
    relations: Iterable[Relation], entities: Mapping[str, Entity], ontology: Ontology
) -> rdflib.Graph:
    """Relations plus their entities' types with every superclass, so no inference is needed."""
    data = new_graph(ontology)
    involved: set[str] = set()
    for relation in relations:
        triple = relation_triple(relation, ontology)
        if triple is not None:
            data.add(triple)
        involved.add(relation.subject_id)
        if relation.object_id is not None:
            involved.add(relation.object_id)
    for entity_id in involved:
        _add_typed_entity(data, entities[entity_id], ontology)
    return data


def _add_typed_entity(data: rdflib.Graph, entity: Entity, ontology: Ontology) -> None:
    node = entity_iri(entity.id)
    types = {a for t in entity.types for a in ontology.ancestors(t)}
    for type_name in types:
        data.add((node, RDF.type, URIRef(ontology.class_iri(type_name))))
    data.add((node, RDFS.label, Literal(entity.canonical_name)))
    for alias in entity.aliases:
        data.add((node, SKOS.altLabel, Literal(alias)))


def _run_shacl(data: rdflib.Graph, shapes: rdflib.Graph) -> list[_Result]:
    if len(data) == 0:
        return []
    try:
        _, report, _ = pyshacl.validate(
            data, shacl_graph=shapes, inference="none", inplace=True, advanced=False, js=False
        )
    except ReportableRuntimeError as exc:
        raise ShapesError(f"SHACL shapes could not be used: {exc}") from exc
    if not isinstance(report, rdflib.Graph):
        raise ShapesError(f"SHACL validation failed: {report}")
    return [_read_result(report, node) for node in _result_nodes(report)]


def _result_nodes(report: rdflib.Graph) -> list[Node]:
    return list(report.subjects(RDF.type, SH.ValidationResult))


def _read_result(report: rdflib.Graph, node: Node) -> _Result:
    return _Result(
        focus=report.value(node, SH.focusNode),
        path=report.value(node, SH.resultPath),
        value=report.value(node, SH.value),
        message=_message(report, node),
        shape=report.value(node, SH.sourceShape),
        severity=report.value(node, SH.resultSeverity),
    )


def _message(report: rdflib.Graph, node: Node) -> str:
    messages = sorted({str(m) for m in report.objects(node, SH.resultMessage)})
    if messages:
        return "; ".join(messages)
    component = report.value(node, SH.sourceConstraintComponent)
    return f"violates {_local(component)}" if component else "violates a SHACL shape"


class _RelationIndex:
    """Finds the relations a SHACL result is about, from its focus node, path and value."""

    def __init__(self, relations: Iterable[Relation], ontology: Ontology) -> None:
        self.by_triple: dict[_Key, list[Relation]] = defaultdict(list)
        self.by_subject: dict[_Key, list[Relation]] = defaultdict(list)
        self.by_object: dict[_Key, list[Relation]] = defaultdict(list)
        for relation in relations:
            triple = relation_triple(relation, ontology)
            if triple is None:
                continue
            s, p, o = triple
            self.by_triple[(s, p, o)].append(relation)
            self.by_subject[(s, p)].append(relation)
            self.by_object[(p, o)].append(relation)

    def match(self, result: _Result, shapes: rdflib.Graph) -> list[Relation]:
        """Relations whose triple the result names, or that put its focus node in scope."""
        if isinstance(result.path, URIRef):
            if result.value is not None:
                return self.by_triple.get((result.focus, result.path, result.value), [])
            return self.by_subject.get((result.focus, result.path), [])
        if result.shape is None:
            return []
        found: list[Relation] = []
        for predicate in shapes.objects(result.shape, SH.targetSubjectsOf):
            found.extend(self.by_subject.get((result.focus, predicate), []))
        for predicate in shapes.objects(result.shape, SH.targetObjectsOf):
            found.extend(self.by_object.get((predicate, result.focus), []))
        return found


def _explain(
    result: _Result, relation: Relation, entities: Mapping[str, Entity]
) -> tuple[str, dict[str, str]]:
    reason = f"{result.message}: {_statement(relation, entities)}"
    detail = {
        **_detail(relation),
        "shacl_message": result.message,
        "focus_node": str(result.focus),
    }
    if result.shape is not None and not isinstance(result.shape, BNode):
        detail["source_shape"] = str(result.shape)
    if result.value is not None:
        detail["value"] = str(result.value)
    return reason, detail


def _statement(relation: Relation, entities: Mapping[str, Entity]) -> str:
    """The relation in words, e.g. ``'Paris' (Place) worksFor 'ACME' (Organization)``."""
    subject = _describe_entity(relation.subject_id, entities)
    if relation.object_id is not None:
        obj = _describe_entity(relation.object_id, entities)
    else:
        obj = repr(relation.object_literal)
    return f"{subject} {relation.predicate} {obj}"


def _describe_entity(entity_id: str, entities: Mapping[str, Entity]) -> str:
    entity = entities.get(entity_id)
    if entity is None:
        return entity_id
    types = ", ".join(entity.types) or "untyped"
    return f"'{entity.canonical_name}' ({types})"


def _detail(relation: Relation) -> dict[str, str]:
    detail = {"relation_id": relation.id, "predicate": relation.predicate}
    detail["subject_id"] = relation.subject_id
    if relation.object_id is not None:
        detail["object_id"] = relation.object_id
    if relation.object_literal is not None:
        detail["object_literal"] = relation.object_literal
    return detail


def _quarantine(
    batch_id: str, relation: Relation, findings: Sequence[tuple[str, dict[str, str]]]
) -> Quarantined:
    reasons = list(dict.fromkeys(reason for reason, _ in findings))
    detail = dict(findings[0][1])
    if len(reasons) > 1:
        detail["problems"] = str(len(reasons))
    return Quarantined(
        id=stable_id("q", batch_id, "relation", relation.id),
        batch_id=batch_id,
        kind="relation",
        subject=relation.id,
        reason="; ".join(reasons),
        detail=detail,
    )


def _local(node: Node) -> str:
    text = str(node)
    return text.rsplit("#", 1)[-1].rsplit("/", 1)[-1]
