"""Is a submitted ontology the configured one? Answered with bounded work, without trusting it.

Comparing two graphs exactly needs rdflib's canonicalisation, which is exponential on some tiny
inputs (identical rings of blank nodes: four rings of four took 4 s, eight would take hours). So
a submission is first parsed under limits (size in triples, blank nodes), then compared by a
cheap *fingerprint*: the sorted N-Triples with every blank-node label replaced by one symbol.
Equal graphs always have equal fingerprints, so a different fingerprint is a mismatch at once;
only a submission whose fingerprint equals the configured ontology's (so no bigger than it) is
canonicalised. The API runs ``check_submitted`` in a child process with a CPU limit
(``api/guards/ontology.py``), which bounds the parse itself.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import rdflib
from rdflib import BNode

from knowledge_assets.pipeline.ontology import (
    Ontology,
    OntologyError,
    content_hash,
    ontology_from_graph,
    parse_turtle,
)

__all__ = [
    "ExpectedOntology",
    "OntologyLimits",
    "OntologyVerdict",
    "check_submitted",
    "fingerprint",
]

_BLANK_LABEL = re.compile(r"_:[A-Za-z0-9_.-]+")
SOURCE = "submitted ontology"


@dataclass(frozen=True)
class OntologyLimits:
    """The most a submitted ontology may hold; the defaults are far above real ontologies."""

    max_triples: int = 200_000
    max_blank_nodes: int = 20_000


@dataclass(frozen=True)
class ExpectedOntology:
    """What a submission is compared with: small, so it travels to a child process cheaply."""

    fingerprint: str
    hash: str

    @classmethod
    def of(cls, ontology: Ontology) -> ExpectedOntology:
        """The identity of a loaded (trusted) ontology."""
        return cls(fingerprint=fingerprint(ontology.graph()), hash=ontology.hash)


@dataclass(frozen=True)
class OntologyVerdict:
    """``code`` is ``None`` when the submission is the configured ontology, else why not."""

    code: str | None = None
    message: str = ""

    @classmethod
    def accepted(cls) -> OntologyVerdict:
        """The submission is the configured ontology."""
        return cls()


def fingerprint(text_or_graph: str | rdflib.Graph) -> str:
    """SHA-256 of the sorted N-Triples with blank-node labels erased; linear in the graph."""
    graph = text_or_graph
    if isinstance(graph, str):
        graph = parse_turtle(graph, SOURCE)
    lines = sorted(_BLANK_LABEL.sub("_:", line) for line in _ntriples(graph))
    return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()


def check_submitted(
    text: str, expected: ExpectedOntology, limits: OntologyLimits
) -> OntologyVerdict:
    """Whether ``text`` is the expected ontology: parse, check limits, validate, then compare."""
    try:
        graph = parse_turtle(text, SOURCE)
        refused = _over_limits(graph, limits)
        if refused is not None:
            return refused
        ontology_from_graph(graph, SOURCE, digest="")
    except OntologyError as exc:
        return OntologyVerdict("invalid_ontology", str(exc))
    if fingerprint(graph) != expected.fingerprint:
        return _mismatch()
    return OntologyVerdict.accepted() if content_hash(graph) == expected.hash else _mismatch()


def _over_limits(graph: rdflib.Graph, limits: OntologyLimits) -> OntologyVerdict | None:
    if len(graph) > limits.max_triples:
        return _too_complex(f"{len(graph):,} triples (limit {limits.max_triples:,})")
    blanks = {term for triple in graph for term in triple if isinstance(term, BNode)}
    if len(blanks) > limits.max_blank_nodes:
        return _too_complex(f"{len(blanks):,} blank nodes (limit {limits.max_blank_nodes:,})")
    return None


def _too_complex(what: str) -> OntologyVerdict:
    return OntologyVerdict("ontology_too_complex", f"the submitted ontology has {what}")


def _mismatch() -> OntologyVerdict:
    return OntologyVerdict(
        "ontology_mismatch",
        "this platform extracts with its configured ontology (KNOWLEDGE_ONTOLOGY); "
        "per-batch ontologies are not supported: omit `ontology` or send that one",
    )


def _ntriples(graph: rdflib.Graph) -> list[str]:
    text = graph.serialize(format="nt")
    return [line for line in text.splitlines() if line.strip()]
