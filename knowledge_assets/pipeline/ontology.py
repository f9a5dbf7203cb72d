"""The ontology: classes and properties read from OWL/RDFS Turtle, the vocabulary of every stage."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Literal

import rdflib
from rdflib import OWL, RDF, RDFS, SKOS, XSD, BNode, Namespace, URIRef
from rdflib.collection import Collection
from rdflib.compare import to_canonical_graph
from rdflib.plugins.parsers.notation3 import BadSyntax
from rdflib.term import Node

__all__ = [
    "DEFAULT_NAMESPACE",
    "KA",
    "MAX_SUBCLASS_DEPTH",
    "Ontology",
    "OntologyClass",
    "OntologyError",
    "OntologyProperty",
    "content_hash",
    "load_ontology",
    "ontology_from_graph",
    "parse_ontology",
    "parse_turtle",
]

KA = Namespace("http://knowledge-assets.org/ns#")
DEFAULT_NAMESPACE = "http://knowledge-assets.org/ontology/news#"
DEFAULT_SOURCE = "<default>"

PropertyKind = Literal["object", "datatype"]

_BUILTIN_PREFIXES = (str(OWL), str(RDF), str(RDFS), str(XSD), str(SKOS), str(KA))
_UNCONSTRAINED = frozenset({OWL.Thing, RDFS.Resource})
_LITERAL_TYPES = frozenset({RDFS.Literal, RDF.langString, RDF.PlainLiteral, RDF.XMLLiteral})
# Deeper subclass chains are refused: real ontologies stay far below it (schema.org ~6,
# SNOMED CT ~30), and every class holds its whole ancestry in memory.
MAX_SUBCLASS_DEPTH = 128


class OntologyError(ValueError):
    """An ontology that cannot be used; the message names the file, the term and the problem."""


@dataclass(frozen=True)
class OntologyClass:
    """A class of entities, e.g. ``Person``, with the names and NER labels that point at it."""

    iri: str
    name: str
    label: str
    synonyms: tuple[str, ...]
    parents: tuple[str, ...]
    ner_labels: tuple[str, ...]


@dataclass(frozen=True)
class OntologyProperty:
    """A relation type between entities (object) or from an entity to a literal (datatype)."""

    iri: str
    name: str
    label: str
    kind: PropertyKind
    domain: tuple[str, ...]
    range: tuple[str, ...]
    synonyms: tuple[str, ...]
    triggers: tuple[str, ...]


@dataclass(frozen=True)
class Ontology:
    """A loaded ontology, indexed by local name; hashable by its content hash and source.

    Lookups by class name are lenient: a name outside the ontology is its own only ancestor and
    root, and gets an IRI in the ontology namespace, so callers handling extractor output never
    crash on a stray label; validation is where unknown names are reported.
    """

    namespace: str
    classes: Mapping[str, OntologyClass]
    properties: Mapping[str, OntologyProperty]
    hash: str
    source: str
    disjoint_with: Mapping[str, frozenset[str]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    _graph: rdflib.Graph = field(default_factory=rdflib.Graph, repr=False, compare=False)

    def __hash__(self) -> int:
        return hash((self.hash, self.source))

    def graph(self) -> rdflib.Graph:
        """A fresh copy of the parsed ontology graph, so callers may add to it freely."""
        copy = rdflib.Graph(bind_namespaces="core")
        for prefix, namespace in self._graph.namespaces():
            copy.bind(prefix, namespace, override=True)
        copy += self._graph
        return copy

    def ancestors(self, name: str) -> frozenset[str]:
        """The class itself plus every superclass inside the ontology."""
        return self._ancestry.get(name, frozenset({name}))

    def is_subclass(self, sub: str, sup: str) -> bool:
        """Whether ``sub`` is ``sup`` or one of its (transitive) subclasses."""
        return sup in self.ancestors(sub)

    def compatible(self, a: str, b: str) -> bool:
        """Whether one class is the other or one of its ancestors: they may describe one entity."""
        return self.is_subclass(a, b) or self.is_subclass(b, a)

    def disjoint(self, a: str, b: str) -> bool:
        """Whether nothing can be both: a class of each is declared disjoint with the other.

        Declared by ``owl:disjointWith`` or ``owl:AllDisjointClasses`` and inherited by
        subclasses ("Facility" is disjoint with "Person" when "Place" is).
        """
        return any(
            not self.disjoint_with.get(x, frozenset()).isdisjoint(self.ancestors(b))
            for x in self.ancestors(a)
        )

    def root_of(self, name: str) -> str:
        """The top-most ancestor; with several roots, the alphabetically first, for determinism."""
        roots = [a for a in self.ancestors(name) if a not in self.classes or not self._parents(a)]
        return min(roots)

    def class_for_ner_label(self, label: str) -> str | None:
        """The class an NER label (e.g. ``"GPE"``) maps to, or ``None`` when no class claims it."""
        return self._ner_index.get(label.strip().upper())

    def class_iri(self, name: str) -> str:
        """The IRI of a class by local name."""
        known = self.classes.get(name)
        return known.iri if known else self.namespace + name

    def property_iri(self, name: str) -> str:
        """The IRI of a property by local name."""
        known = self.properties.get(name)
        return known.iri if known else self.namespace + name

    def _parents(self, name: str) -> tuple[str, ...]:
        return self.classes[name].parents

    @functools.cached_property
    def _ancestry(self) -> Mapping[str, frozenset[str]]:
        # Parents before children, so each class unions finished sets: no recursion, and the
        # depth limit (MAX_SUBCLASS_DEPTH) keeps the sets small.
        found: dict[str, frozenset[str]] = {}
        for name in _parents_first(self.classes):
            inherited = (found[parent] for parent in self._parents(name))
            found[name] = frozenset({name}).union(*inherited)
        return MappingProxyType(found)

    @functools.cached_property
    def _ner_index(self) -> Mapping[str, str]:
        claims: dict[str, list[str]] = {}
        for cls in self.classes.values():
            for label in cls.ner_labels:
                claims.setdefault(label.upper(), []).append(cls.name)
        return {
            label: min(names, key=lambda n: (-len(self.ancestors(n)), n))
            for label, names in claims.items()
        }


def load_ontology(path: Path | None = None) -> Ontology:
    """Load an ontology file, or the shipped default when ``path`` is ``None``.

    Raises:
        OntologyError: the file is missing, unreadable, not UTF-8 or not a usable ontology.
    """
    if path is None:
        return _default_ontology()
    return parse_ontology(_read_text(Path(path)), source=str(path))


def parse_ontology(text: str, source: str = "<string>") -> Ontology:
    """Parse Turtle text into an ``Ontology``, refusing anything other stages could trip on.

    Raises:
        OntologyError: invalid Turtle, no classes, duplicate local names, undefined domain or
            range classes, a subclass cycle or a subclass chain deeper than
            ``MAX_SUBCLASS_DEPTH``.
    """
    if not text.strip():
        raise OntologyError(f"{source}: file is empty: ontology defines no classes")
    graph = parse_turtle(text, source)
    checked = ontology_from_graph(graph, source, digest="")
    # Canonicalisation last: it is the costly step, and only a valid ontology gets there.
    return dataclasses.replace(checked, hash=content_hash(graph))


def ontology_from_graph(graph: rdflib.Graph, source: str, *, digest: str) -> Ontology:
    """Read and check an already parsed graph; ``digest`` becomes ``Ontology.hash``.

    Raises:
        OntologyError: as ``parse_ontology``.
    """
    class_iris = _class_iris(graph)
    if not class_iris:
        raise OntologyError(
            f"{source}: ontology defines no classes (no owl:Class or rdfs:Class declarations)"
        )
    kinds = _property_kinds(graph, class_iris, source)
    names = _local_names([*class_iris, *kinds], source)
    class_names = {iri: names[iri] for iri in class_iris}
    classes = {names[iri]: _read_class(graph, iri, class_names) for iri in class_iris}
    _check_acyclic(classes, source)
    disjoint = _read_disjointness(graph, class_names)
    properties = {
        names[iri]: _read_property(graph, iri, kind, names[iri], class_names, source)
        for iri, kind in kinds.items()
    }
    ontology = Ontology(
        namespace=_main_namespace(names),
        classes=MappingProxyType(dict(sorted(classes.items()))),
        properties=MappingProxyType(dict(sorted(properties.items()))),
        hash=digest,
        source=source,
        disjoint_with=disjoint,
        _graph=graph,
    )
    _check_satisfiable(ontology, source)
    return ontology


@functools.lru_cache(maxsize=1)
def _default_ontology() -> Ontology:
    """Parse the shipped ontology once per process: every stage and test asks for it."""
    resource = resources.files("knowledge_assets.pipeline").joinpath("data/default_ontology.ttl")
    return parse_ontology(resource.read_text(encoding="utf-8"), source=DEFAULT_SOURCE)


def _read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise OntologyError(f"{path}: ontology file not found") from None
    except IsADirectoryError:
        raise OntologyError(f"{path}: is a directory, not an ontology file") from None
    except OSError as exc:
        raise OntologyError(f"{path}: cannot read ontology file: {exc.strerror or exc}") from exc
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise OntologyError(
            f"{path}: not UTF-8 text: invalid byte 0x{data[exc.start]:02x} at line {line} "
            f"(byte offset {exc.start})"
        ) from None


def parse_turtle(text: str, source: str) -> rdflib.Graph:
    """Parse Turtle, turning rdflib's many exception types into one ``OntologyError``.

    Raises:
        OntologyError: the text is not valid Turtle; the message gives reason and line.
    """
    graph = rdflib.Graph(bind_namespaces="core")
    try:
        graph.parse(data=text, format="turtle")
    except BadSyntax as exc:
        raise OntologyError(f"{source}: not valid Turtle: {_syntax_message(exc)}") from None
    # rdflib reports some malformed input (bad literals, IRIs) with other exception types.
    except Exception as exc:
        raise OntologyError(f"{source}: not valid Turtle: {exc}") from exc
    return graph


def _syntax_message(exc: BadSyntax) -> str:
    """Turn rdflib's parser error into 'reason at line N' with a correct 1-based line number."""
    raw, offset, why = (
        getattr(exc, "_str", None),
        getattr(exc, "_i", None),
        getattr(exc, "_why", ""),
    )
    if not isinstance(raw, bytes) or not isinstance(offset, int):
        return str(exc)
    line = raw[:offset].count(b"\n") + 1
    start = raw.rfind(b"\n", 0, offset) + 1
    text = raw[start:].split(b"\n", 1)[0].decode("utf-8", "replace").strip()
    return f"{why} at line {line}: {text[:80]!r}"


def _is_builtin(term: Node) -> bool:
    return str(term).startswith(_BUILTIN_PREFIXES)


def _class_iris(graph: rdflib.Graph) -> list[URIRef]:
    found: set[URIRef] = set()
    for kind in (OWL.Class, RDFS.Class):
        found.update(s for s in graph.subjects(RDF.type, kind) if isinstance(s, URIRef))
    return sorted(iri for iri in found if not _is_builtin(iri))


def _property_kinds(
    graph: rdflib.Graph, class_iris: list[URIRef], source: str
) -> dict[URIRef, PropertyKind]:
    object_props = set(_declared(graph, OWL.ObjectProperty))
    datatype_props = set(_declared(graph, OWL.DatatypeProperty))
    both = sorted(object_props & datatype_props)
    if both:
        raise OntologyError(
            f"{source}: property <{both[0]}> is declared both owl:ObjectProperty and "
            "owl:DatatypeProperty"
        )
    kinds: dict[URIRef, PropertyKind] = dict.fromkeys(object_props, "object")
    kinds.update(dict.fromkeys(datatype_props, "datatype"))
    annotations = set(_declared(graph, OWL.AnnotationProperty))
    for iri in _declared(graph, RDF.Property):
        if iri not in kinds and iri not in annotations:
            kinds[iri] = "datatype" if _has_datatype_range(graph, iri) else "object"
    clash = sorted(set(kinds) & set(class_iris))
    if clash:
        raise OntologyError(f"{source}: <{clash[0]}> is declared both as a class and as a property")
    return dict(sorted(kinds.items()))


def _declared(graph: rdflib.Graph, kind: URIRef) -> Iterable[URIRef]:
    return (
        s for s in graph.subjects(RDF.type, kind) if isinstance(s, URIRef) and not _is_builtin(s)
    )


def _has_datatype_range(graph: rdflib.Graph, iri: URIRef) -> bool:
    members = _members(graph, iri, RDFS.range)
    return bool(members) and all(_is_datatype(graph, m) for m in members)


def _is_datatype(graph: rdflib.Graph, term: Node) -> bool:
    return (
        str(term).startswith(str(XSD))
        or term in _LITERAL_TYPES
        or (term, RDF.type, RDFS.Datatype) in graph
    )


def _members(graph: rdflib.Graph, subject: Node, predicate: URIRef) -> list[Node]:
    """Values of ``predicate``, with anonymous ``owl:unionOf`` lists flattened into members."""
    members: list[Node] = []
    for value in graph.objects(subject, predicate):
        union = graph.value(value, OWL.unionOf) if isinstance(value, BNode) else None
        members.extend(Collection(graph, union) if union is not None else [value])
    return members


def _local_name(iri: str) -> str:
    for separator in ("#", "/", ":"):
        if separator in iri:
            return iri.rsplit(separator, 1)[1]
    return iri


def _local_names(iris: list[URIRef], source: str) -> dict[URIRef, str]:
    names: dict[URIRef, str] = {}
    owners: dict[str, URIRef] = {}
    for iri in iris:
        name = _local_name(str(iri))
        if not name:
            raise OntologyError(f"{source}: cannot derive a local name from <{iri}>")
        if name in owners:
            raise OntologyError(
                f"{source}: duplicate local name '{name}': <{owners[name]}> and <{iri}> "
                "(class and property names must be unique)"
            )
        owners[name] = iri
        names[iri] = name
    return names


def _main_namespace(names: Mapping[URIRef, str]) -> str:
    counts = Counter(str(iri)[: -len(name)] for iri, name in names.items())
    return min(counts, key=lambda ns: (-counts[ns], ns))


def _label(graph: rdflib.Graph, iri: URIRef, fallback: str) -> str:
    """The English ``rdfs:label`` if any, else an untagged one, else any, else the local name."""
    labels = [v for v in graph.objects(iri, RDFS.label) if isinstance(v, rdflib.Literal)]
    if not labels:
        return fallback

    def preference(label: rdflib.Literal) -> tuple[int, str]:
        lang = (label.language or "").lower()
        rank = 0 if lang == "en" or lang.startswith("en-") else 1 if not lang else 2
        return rank, str(label)

    return str(min(labels, key=preference))


def _texts(graph: rdflib.Graph, iri: URIRef, predicate: URIRef) -> tuple[str, ...]:
    values = {" ".join(str(v).split()) for v in graph.objects(iri, predicate)}
    return tuple(sorted(v for v in values if v))


def _read_class(
    graph: rdflib.Graph, iri: URIRef, class_names: Mapping[URIRef, str]
) -> OntologyClass:
    name = class_names[iri]
    parents = {
        class_names[p]
        for p in graph.objects(iri, RDFS.subClassOf)
        if isinstance(p, URIRef) and p in class_names
    }
    return OntologyClass(
        iri=str(iri),
        name=name,
        label=_label(graph, iri, name),
        synonyms=_texts(graph, iri, SKOS.altLabel),
        parents=tuple(sorted(parents)),
        ner_labels=tuple(sorted({label.upper() for label in _texts(graph, iri, KA.nerLabel)})),
    )


def _check_acyclic(classes: Mapping[str, OntologyClass], source: str) -> None:
    """Refuse subclass cycles and chains deeper than ``MAX_SUBCLASS_DEPTH``.

    A cycle would make ancestors, roots and SHACL typing never terminate or agree; a very deep
    chain makes every class's ancestor set as long as the chain (quadratic memory). The walk is
    iterative: the input decides how deep it goes, never Python's stack.
    """
    depth: dict[str, int] = {}
    for start in classes:
        if start in depth:
            continue
        path: list[str] = [start]
        on_path = {start}
        pending = [iter(classes[start].parents)]
        while pending:
            parent = next(pending[-1], None)
            if parent is None:
                name = path.pop()
                on_path.discard(name)
                pending.pop()
                depth[name] = 1 + max((depth[p] for p in classes[name].parents), default=0)
                if depth[name] > MAX_SUBCLASS_DEPTH:
                    raise OntologyError(
                        f"{source}: subclass chain from '{name}' is deeper than "
                        f"{MAX_SUBCLASS_DEPTH} classes (the limit of this platform)"
                    )
            elif parent in on_path:
                cycle = [*path[path.index(parent) :], parent]
                raise OntologyError(f"{source}: subclass cycle: {' → '.join(cycle)}")
            elif parent not in depth:
                path.append(parent)
                on_path.add(parent)
                pending.append(iter(classes[parent].parents))


def _parents_first(classes: Mapping[str, OntologyClass]) -> list[str]:
    """Every class after all of its parents (the ontology was checked acyclic)."""
    order: list[str] = []
    placed: set[str] = set()
    for start in classes:
        stack = [start]
        while stack:
            name = stack[-1]
            if name in placed:
                stack.pop()
                continue
            waiting = [p for p in classes[name].parents if p not in placed]
            if waiting:
                stack.extend(waiting)
            else:
                placed.add(name)
                order.append(name)
                stack.pop()
    return order


def _read_disjointness(
    graph: rdflib.Graph, class_names: Mapping[URIRef, str]
) -> Mapping[str, frozenset[str]]:
    """Declared disjoint classes, both ways: ``owl:disjointWith`` and ``owl:AllDisjointClasses``.

    Statements about classes outside the ontology are ignored, like other external terms.
    """
    pairs: list[tuple[Node, Node]] = list(graph.subject_objects(OWL.disjointWith))
    for group in graph.subjects(RDF.type, OWL.AllDisjointClasses):
        for members in graph.objects(group, OWL.members):
            listed = list(Collection(graph, members))
            pairs.extend((x, y) for x in listed for y in listed if x != y)
    found: dict[str, set[str]] = {}
    names = {str(iri): name for iri, name in class_names.items()}
    for x, y in pairs:
        a, b = names.get(str(x)), names.get(str(y))
        if a and b:
            found.setdefault(a, set()).add(b)
            found.setdefault(b, set()).add(a)
    return MappingProxyType({name: frozenset(others) for name, others in sorted(found.items())})


def _check_satisfiable(ontology: Ontology, source: str) -> None:
    """Refuse a class declared disjoint with itself or an ancestor: it could have no instance."""
    for name in ontology.classes:
        if ontology.disjoint(name, name):
            raise OntologyError(
                f"{source}: class '{name}' is disjoint with itself or one of its superclasses"
            )


def _read_property(
    graph: rdflib.Graph,
    iri: URIRef,
    kind: PropertyKind,
    name: str,
    class_names: Mapping[URIRef, str],
    source: str,
) -> OntologyProperty:
    where = f"{source}: property '{name}'"
    domain = _class_names(graph, iri, RDFS.domain, class_names, where)
    if kind == "object":
        range_ = _class_names(graph, iri, RDFS.range, class_names, where)
    else:
        range_ = _datatypes(graph, iri, where)
    return OntologyProperty(
        iri=str(iri),
        name=name,
        label=_label(graph, iri, name),
        kind=kind,
        domain=domain,
        range=range_,
        synonyms=_texts(graph, iri, SKOS.altLabel),
        triggers=tuple(sorted({t.lower() for t in _texts(graph, iri, KA.trigger)})),
    )


def _class_names(
    graph: rdflib.Graph,
    iri: URIRef,
    predicate: URIRef,
    class_names: Mapping[URIRef, str],
    where: str,
) -> tuple[str, ...]:
    role = "rdfs:domain" if predicate == RDFS.domain else "rdfs:range"
    members = _members(graph, iri, predicate)
    if any(m in _UNCONSTRAINED for m in members):
        return ()
    found: set[str] = set()
    for member in members:
        if isinstance(member, BNode):
            raise OntologyError(
                f"{where}: {role} is an anonymous class expression; only named classes and "
                "owl:unionOf lists of them are supported"
            )
        if _is_datatype(graph, member):
            raise OntologyError(
                f"{where}: {role} <{member}> is a datatype, not a class "
                "(declare the property owl:DatatypeProperty)"
            )
        name = class_names.get(member) if isinstance(member, URIRef) else None
        if name is None:
            raise OntologyError(
                f"{where}: {role} names class <{member}>, which is not defined in the ontology"
            )
        found.add(name)
    return tuple(sorted(found))


def _datatypes(graph: rdflib.Graph, iri: URIRef, where: str) -> tuple[str, ...]:
    found: set[str] = set()
    for member in _members(graph, iri, RDFS.range):
        if not isinstance(member, URIRef) or not _is_datatype(graph, member):
            raise OntologyError(
                f"{where}: rdfs:range <{member}> of a datatype property is not a datatype "
                "(use an XSD datatype such as xsd:string)"
            )
        found.add(str(member))
    return tuple(sorted(found))


def content_hash(graph: rdflib.Graph) -> str:
    """SHA-256 of sorted canonical N-Triples: blank-node labels and formatting do not matter."""
    canonical = to_canonical_graph(graph).serialize(format="nt")
    lines = sorted(line for line in canonical.splitlines() if line.strip())
    return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()
