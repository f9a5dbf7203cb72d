"""Entities from clusters: canonical name, types, aliases and an id stable across batches."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Sequence

from knowledge_assets.pipeline.models import Entity, Mention, stable_id
from knowledge_assets.pipeline.resolution.labels import LabelRules
from knowledge_assets.pipeline.resolution.nodes import NameNode
from knowledge_assets.pipeline.resolution.normalize import normalize_name

__all__ = ["assign", "build_entities", "canonical_name", "entity_types"]

_POSSESSIVE_END = re.compile(r"(?:['\u2019]s|(?<=s)['\u2019])$")


def _display(text: str) -> str:
    """A surface form fit to name an entity: trimmed, without a trailing possessive."""
    return _POSSESSIVE_END.sub("", text.strip()) or text.strip()


def canonical_name(members: Sequence[NameNode]) -> str:
    """The most frequent full surface form; longer, then alphabetically first, among ties.

    "Full" means a multi-word name when the cluster has one, so "Smith" x 5 and "John Smith" x 1
    is "John Smith", and "IBM" yields to "International Business Machines". A possessive ending
    is dropped first ("Tara Reid's" counts as "Tara Reid").
    """
    counts: Counter[str] = Counter()
    full: set[str] = set()
    for node in members:
        for mention in node.mentions:
            text = _display(mention.text)
            counts[text] += 1
            if len(node.tokens) > 1:
                full.add(text)
    pool = full or set(counts)
    return min(pool, key=lambda text: (-counts[text], -len(text), text))


def entity_types(members: Sequence[NameNode], labels: LabelRules) -> tuple[str, ...]:
    """The types of a cluster: its fullest names' labels decide, then the most mentioned.

    A guard may let a name tagged another class join a cluster ("Jackman" tagged a place, with
    "Hugh Jackman"): the fuller name says more than a tagger's label for a part of it. The
    labels that do not fit the deciding one are dropped (``LabelRules.consistent``), so an
    entity never carries two disjoint types.
    """
    weight: dict[str, tuple[int, int]] = {}
    for node in members:
        words, mentions = weight.get(node.label, (0, 0))
        weight[node.label] = (max(words, len(node.tokens)), mentions + node.size)
    ranked = sorted(weight, key=lambda label: (*(-w for w in weight[label]), label))
    return labels.consistent(ranked)


def _entity(members: Sequence[NameNode], labels: LabelRules) -> Entity:
    mentions = [m for node in members for m in node.mentions]
    name = canonical_name(members)
    types = entity_types(members, labels)
    return Entity(
        id=stable_id("ent", labels.root(types[0]), normalize_name(name)),
        canonical_name=name,
        types=types,
        aliases=tuple(sorted({m.text.strip() for m in mentions})),
        mention_ids=tuple(sorted({m.id for m in mentions})),
    )


def _distinct_ids(entities: list[Entity]) -> list[Entity]:
    """Suffix ids that collide (same root and name, kept apart by a guard or the size cap).

    The entity with the smallest mention id keeps the plain id, so the common case stays stable
    across batches; the others are numbered in mention-id order.
    """
    by_id: dict[str, list[Entity]] = defaultdict(list)
    for entity in entities:
        by_id[entity.id].append(entity)
    result = []
    for plain, same in by_id.items():
        same.sort(key=lambda e: e.mention_ids[0])
        result.append(same[0])
        result.extend(
            e.model_copy(update={"id": stable_id("ent", plain, n)})
            for n, e in enumerate(same[1:], start=2)
        )
    return sorted(result, key=lambda e: e.id)


def build_entities(
    clusters: Sequence[Sequence[int]], nodes: Sequence[NameNode], labels: LabelRules
) -> tuple[tuple[Entity, ...], dict[str, str]]:
    """Entities of the clusters, sorted by id, and the entity id of each mention id."""
    entities = _distinct_ids([_entity([nodes[i] for i in c], labels) for c in clusters])
    owner: dict[str, str] = {}
    for entity in entities:
        owner.update(dict.fromkeys(entity.mention_ids, entity.id))
    return tuple(entities), owner


def assign(mentions: Sequence[Mention], owner: dict[str, str]) -> tuple[Mention, ...]:
    """The mentions with their entity ids, in document order."""
    ordered = sorted(mentions, key=lambda m: (m.document_id, m.start, m.end, m.id))
    return tuple(m.model_copy(update={"entity_id": owner[m.id]}) for m in ordered)
