"""Relation extraction guided by the ontology: trigger lemmas between two typed mentions.

Which mention is the relation's subject is not always the first one in the text. A trigger links
two mentions in the property's own order in the active voice ("Fjordway acquired Nordlys"); a
passive with a "by" agent reverses it ("Nordlys was acquired by Fjordway"). When the property's
domain and range share no class, the mentions' types also orient it ("Kestrel hired Ada Lind"
gives Ada Lind worksFor Kestrel); when they overlap, only the voice does, so a mislabelled
mention never turns a relation around.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from knowledge_assets.pipeline.models import ExtractedMention, ExtractedRelation
from knowledge_assets.pipeline.ontology import Ontology, OntologyProperty

MAX_GAP_TOKENS = 12
_SENTENCE_END = {".", "!", "?", ";"}


class RelationPatterns:
    """Finds ``mention … trigger … mention`` within a sentence, respecting domain and range."""

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
                found.extend(self._match(i, j, between, mentions, ents))
        return found

    def _match(
        self,
        i: int,
        j: int,
        between: Any,
        mentions: Sequence[ExtractedMention],
        ents: Sequence[Any],
    ) -> list[ExtractedRelation]:
        lemmas = " " + " ".join(t.lemma_.lower() for t in between) + " "
        matches = []
        for prop in self.properties:
            triggers = [t for t in prop.triggers if f" {t} " in lemmas]
            if not triggers:
                continue
            passive = _passive_with_agent(between, triggers)
            order = self._order(prop, i, j, mentions, passive)
            if order is None:
                continue
            at = _trigger_position(between, triggers)
            if self._nearer_argument(prop, i, j, at, mentions, ents, passive):
                continue
            matches.append(self._relation(prop, *order, mentions, ents))
        return matches

    def _nearer_argument(
        self,
        prop: OntologyProperty,
        i: int,
        j: int,
        at: int,
        mentions: Sequence[ExtractedMention],
        ents: Sequence[Any],
        passive: bool,
    ) -> bool:
        """Whether a mention between ``i`` and ``j`` is a nearer argument of the trigger at ``at``.

        A trigger links the nearest mentions that can take its roles: in "Marsh worked for
        Polar Optics, a company based in Bergen", Polar Optics, not Marsh, is based in Bergen.
        A mention that cannot take the role (a place in "Fjordway, the Oslo company, acquired
        Nordlys") does not stand in the way.
        """
        for k in range(i + 1, j):
            if ents[k].end <= at and self._order(prop, k, j, mentions, passive) is not None:
                return True
            if ents[k].start > at and self._order(prop, i, k, mentions, passive) is not None:
                return True
        return False

    def _order(
        self,
        prop: OntologyProperty,
        i: int,
        j: int,
        mentions: Sequence[ExtractedMention],
        passive: bool,
    ) -> tuple[int, int] | None:
        """(subject, object) of ``prop`` between mentions ``i`` < ``j``, or None if none fits."""
        if prop.kind == "datatype":
            return (i, j) if self._fits(prop, mentions[i].label, mentions[j].label) else None
        voiced = (j, i) if passive else (i, j)
        candidates = [voiced]
        if self._types_orient(prop):
            candidates.append((voiced[1], voiced[0]))
        fitting = [
            (s, o) for s, o in candidates if self._fits(prop, mentions[s].label, mentions[o].label)
        ]
        return fitting[0] if fitting else None

    def _types_orient(self, prop: OntologyProperty) -> bool:
        """Whether domain and range share no class, so types alone tell subject from object.

        When they overlap (an organization acquires an organization, a person kills a person)
        only the voice orients the relation: a mislabelled mention must not turn it around.
        """
        if not prop.domain or not prop.range:
            return False
        return not any(
            self.ontology.is_subclass(d, r) or self.ontology.is_subclass(r, d)
            for d in prop.domain
            for r in prop.range
        )

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
        subject: int,
        obj: int,
        mentions: Sequence[ExtractedMention],
        ents: Sequence[Any],
    ) -> ExtractedRelation:
        start = min(ents[subject].start_char, ents[obj].start_char)
        end = max(ents[subject].end_char, ents[obj].end_char)
        if prop.kind == "datatype":
            return ExtractedRelation(
                subject=subject,
                predicate=prop.name,
                object_literal=mentions[obj].text,
                start=start,
                end=end,
            )
        return ExtractedRelation(
            subject=subject, predicate=prop.name, object=obj, start=start, end=end
        )


def _trigger_position(between: Any, triggers: Sequence[str]) -> int:
    """The document index of the first token that starts one of ``triggers`` in ``between``."""
    heads = {t.split()[0] for t in triggers}
    for token in between:
        if token.lemma_.lower() in heads:
            return int(token.i)
    return int(between.start)


def _passive_with_agent(between: Any, triggers: Sequence[str]) -> bool:
    """Whether a trigger occurs as a passive participle with a "by" agent after it.

    "was acquired by", "acquired by" (a reduced relative) and triggers written in the passive
    ("manufacture by") all count; "was born in" has no agent and keeps the active order.
    """
    if any(t.endswith(" by") for t in triggers):
        return True
    heads = {t.split()[0] for t in triggers}
    return any(
        token.lemma_.lower() in heads
        and token.tag_ == "VBN"
        and any(t.lower_ == "by" for t in between[k + 1 :])
        for k, token in enumerate(between)
    )
