"""Hostile inputs of issue 16, made small and deterministic for the tests."""

from __future__ import annotations

HEAD = """\
@prefix ex: <http://example.org/deep#> .
@prefix owl: <http://www.w3.org/2002/07/owl#> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
"""


def subclass_chain(depth: int) -> str:
    """``C0 ⊂ C1 ⊂ … ⊂ C{depth-1}``: a valid ontology, as deep as asked."""
    lines = [HEAD]
    for i in range(depth):
        parent = f" ; rdfs:subClassOf ex:C{i + 1}" if i + 1 < depth else ""
        lines.append(f"ex:C{i} a owl:Class{parent} .")
    return "\n".join(lines)


def blank_node_rings(rings: int, size: int) -> str:
    """Identical rings of blank nodes: tiny, and exponential for rdflib's canonicalisation.

    Four rings of four took 4 s in ``rdflib.compare.to_canonical_graph``; each ring more
    multiplies that.
    """
    lines = [HEAD, "ex:Thing a owl:Class ."]
    for ring in range(rings):
        for i in range(size):
            lines.append(f"_:r{ring}n{i} ex:next _:r{ring}n{(i + 1) % size} .")
    return "\n".join(lines)
