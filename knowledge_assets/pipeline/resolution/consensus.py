"""One name, one type per batch: outvoted type labels of a name give way to its usual one.

A statistical tagger labels the same name differently from sentence to sentence ("Teixeira" a
person nine times, an organisation twice). Left alone, the type guard would split such a name
into several entities. A label yields only to a clear majority of the same name's mentions in
the batch; a name without one ("Apple" once a company, once a fruit) keeps its labels. Only
ontology classes, which our extractors assign, are voted on: opaque labels come from the user
(``knowledge resolve``) and are taken as given.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

from knowledge_assets.pipeline.models import Mention
from knowledge_assets.pipeline.resolution.labels import LabelRules
from knowledge_assets.pipeline.resolution.normalize import normalize_name

__all__ = ["MAJORITY", "consensus_labels"]

MAJORITY = 2 / 3
"""Share of a name's mentions its usual label needs before the other labels give way."""

MIN_VOTES = 2
"""A label carried by a single mention is never a majority."""


def consensus_labels(mentions: Sequence[Mention], labels: LabelRules) -> dict[str, str]:
    """The label to resolve each mention under (the mention itself keeps its own label).

    Returns:
        Mention id -> label, for every mention.
    """
    votes: dict[str, Counter[str]] = defaultdict(Counter)
    for mention in mentions:
        if labels.known(mention.label):
            votes[normalize_name(mention.text)][mention.label] += 1
    usual = {name: _winner(counts) for name, counts in votes.items()}
    chosen = {}
    for mention in mentions:
        winner = usual.get(normalize_name(mention.text))
        keep = winner is None or not labels.known(mention.label)
        keep = keep or labels.compatible(mention.label, str(winner))
        chosen[mention.id] = mention.label if keep else str(winner)
    return chosen


def _winner(counts: Counter[str]) -> str | None:
    label, n = min(counts.items(), key=lambda item: (-item[1], item[0]))
    total = sum(counts.values())
    return label if n >= MIN_VOTES and n >= MAJORITY * total else None
