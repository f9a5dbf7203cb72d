"""Relation extraction guided by the ontology: trigger lemmas between two typed mentions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from knowledge_assets.pipeline.models import ExtractedMention, ExtractedRelation
from knowledge_assets.pipeline.ontology import Ontology, OntologyProperty

MAX_GAP_TOKENS = 12
_SENTENCE_END = {".", "!", "?", ";"}


class RelationPatterns:
    """Finds ``subject … trigger … object`` within a sentence, respecting domain and range."""

    def __init__(self, ontology: Ontology) -> None:
        self.ontology = ontology
        self.properties = [p for p in ontology.properties.values() if p.triggers]

    def find(
        self, doc: Any, ents: Sequence[Any], mentions: Sequence[ExtractedMention]
    ) -> list[ExtractedRelation]:
        """All relations between ordered pairs of mentions that a trigger links."""
        found: list[ExtractedRelation] = []
        for i, subject in enumerate(ents):
            for j in range(i + 1, len(ents)):
                obj = ents[j]
                if obj.start - subject.end > MAX_GAP_TOKENS:
                    break
                between = doc[subject.end : obj.start]
                if any(t.text in _SENTENCE_END for t in between):
                    break
                found.extend(self._match(i, j, between, mentions, subject, obj))
        return found

    def _match(
        self,
        i: int,
        j: int,
        between: Any,
        mentions: Sequence[ExtractedMention],
        subject: Any,
        obj: Any,
    ) -> list[ExtractedRelation]:
        lemmas = " " + " ".join(t.lemma_.lower() for t in between) + " "
        matches = []
        for prop in self.properties:
            if not self._fits(prop, mentions[i].label, mentions[j].label):
                continue
            if any(f" {trigger} " in lemmas for trigger in prop.triggers):
                matches.append(self._relation(prop, i, j, mentions, subject, obj))
        return matches

    def _fits(self, prop: OntologyProperty, subject_label: str, object_label: str) -> bool:
        in_domain = not prop.domain or any(
            self.ontology.is_subclass(subject_label, d) for d in prop.domain
        )
        if prop.kind == "datatype":
            return in_domain and object_label == "Date"
        in_range = not prop.range or any(
            self.ontology.is_subclass(object_label, r) for r in prop.range
        )
        return in_domain and in_range

    @staticmethod
    def _relation(
        prop: OntologyProperty,
        i: int,
        j: int,
        mentions: Sequence[ExtractedMention],
        subject: Any,
        obj: Any,
    ) -> ExtractedRelation:
        start, end = subject.start_char, obj.end_char
        if prop.kind == "datatype":
            return ExtractedRelation(
                subject=i,
                predicate=prop.name,
                object_literal=mentions[j].text,
                start=start,
                end=end,
            )
        return ExtractedRelation(subject=i, predicate=prop.name, object=j, start=start, end=end)
