"""The ontology questions resolution asks about mention labels, answered once per label pair."""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

from knowledge_assets.pipeline.ontology import Ontology

__all__ = ["PERSON_CLASS", "LabelRules"]

PERSON_CLASS = "Person"
"""The class whose instances get person-name rules (titles, surnames, first-name guard)."""


class LabelRules:
    """Type compatibility, roots and specificity of mention labels under one ontology.

    Extractors may emit a label the ontology lacks; such a label is treated as its own root,
    compatible only with itself, rather than failing the whole batch.
    """

    def __init__(self, ontology: Ontology) -> None:
        self._ontology = ontology
        self.compatible = lru_cache(maxsize=None)(self._compatible)
        self.root = lru_cache(maxsize=None)(self._root)
        self.is_person = lru_cache(maxsize=None)(self._is_person)
        self.depth = lru_cache(maxsize=None)(self._depth)

    def known(self, label: str) -> bool:
        """Whether the label is an ontology class (one our extractors assign), not opaque."""
        return label in self._ontology.classes

    def _compatible(self, a: str, b: str) -> bool:
        if a == b:
            return True
        return self.known(a) and self.known(b) and self._ontology.compatible(a, b)

    def _root(self, label: str) -> str:
        return self._ontology.root_of(label) if self.known(label) else label

    def _is_person(self, label: str) -> bool:
        if not (self.known(label) and self.known(PERSON_CLASS)):
            return False
        return self._ontology.is_subclass(label, PERSON_CLASS)

    def _depth(self, label: str) -> int:
        return len(self._ontology.ancestors(label)) if self.known(label) else 1

    def disjoint(self, a: str, b: str) -> bool:
        """Whether the ontology declares that nothing can carry both labels."""
        return self.known(a) and self.known(b) and self._ontology.disjoint(a, b)

    def consistent(self, ranked: Iterable[str]) -> tuple[str, ...]:
        """The types one entity may carry, given its labels strongest evidence first.

        Each label is kept when it fits (is, or is an ancestor or descendant of) every label
        kept before it, so the result never holds two disjoint types, nor two sibling classes
        ("Facility" and "City" under "Place"). Returned most specific first.
        """
        kept: list[str] = []
        for label in ranked:
            if label not in kept and all(self.compatible(label, k) for k in kept):
                kept.append(label)
        return self.most_specific_first(kept)

    def most_specific_first(self, labels: Iterable[str]) -> tuple[str, ...]:
        """Distinct labels, deepest class first, then by name: the first is the primary type."""
        return tuple(sorted(set(labels), key=lambda label: (-self.depth(label), label)))
