"""Where resolution loses B-cubed points: wrong merges and missed merges, by type and by reach.

B-cubed precision lost on an item is the share of its cluster outside its gold chain; recall lost
is the share of its chain outside its cluster. Summed over the items of a cluster (a wrong merge)
or of a chain (a missed merge) and divided by the number of items, these losses add up to
1 - precision and 1 - recall, so each error's weight in the score is exact.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from knowledge_assets.evaluation.gold import GoldMention

__all__ = ["error_classes"]


def _loss(members: Sequence[int], part: Mapping[int, str]) -> float:
    """Items' summed share of a group (cluster or chain) that lies outside their own part."""
    sizes = Counter(part[i] for i in members)
    return sum(n * (1 - n / len(members)) for n in sizes.values())


def _groups(of: Mapping[int, str]) -> dict[str, list[int]]:
    found: dict[str, list[int]] = defaultdict(list)
    for item, group in of.items():
        found[group].append(item)
    return found


def _names(gold: Sequence[GoldMention], members: Sequence[int]) -> str:
    return " / ".join(sorted({gold[i].text for i in members}))


def error_classes(
    gold: Sequence[GoldMention], predicted: Mapping[str, str], top: int = 10
) -> dict[str, Any]:
    """Precision and recall lost, by gold type and by whether a wrong merge crosses topics.

    Args:
        gold: The scored gold mentions; item ids are their indices as text.
        predicted: Item id -> predicted cluster id (a missing item is a singleton).
        top: How many of the heaviest wrong and missed merges to list.
    """
    chain = {i: g.chain for i, g in enumerate(gold)}
    cluster = {i: predicted.get(str(i), f"\x00{i}") for i in range(len(gold))}
    wrong = [(_loss(m, chain), m) for m in _groups(cluster).values()]
    missed = [(_loss(m, cluster), m) for m in _groups(chain).values()]
    total = len(gold) or 1
    by_type: dict[str, dict[str, float]] = defaultdict(lambda: {"precision": 0.0, "recall": 0.0})
    for kind, losses in (("precision", wrong), ("recall", missed)):
        for loss, members in losses:
            for label, n in Counter(gold[i].type for i in members).items():
                by_type[label][kind] += loss * n / len(members) / total
    across = sum(loss for loss, m in wrong if len({gold[i].topic for i in m}) > 1)
    return {
        "precision_lost": round(sum(loss for loss, _ in wrong) / total, 4),
        "precision_lost_across_topics": round(across / total, 4),
        "recall_lost": round(sum(loss for loss, _ in missed) / total, 4),
        "by_type": {k: {x: round(v, 4) for x, v in d.items()} for k, d in sorted(by_type.items())},
        "wrong_merges": _heaviest(gold, wrong, chain, top),
        "missed_merges": _heaviest(gold, missed, cluster, top),
    }


def _heaviest(
    gold: Sequence[GoldMention],
    losses: list[tuple[float, list[int]]],
    split_by: Mapping[int, str],
    top: int,
) -> list[dict[str, Any]]:
    """The ``top`` errors by loss, each as its parts' names (gold chains, or clusters)."""
    found = []
    for loss, members in sorted(losses, key=lambda item: -item[0])[:top]:
        if loss <= 0:
            break
        parts = _groups({i: split_by[i] for i in members})
        found.append(
            {
                "lost": round(loss / (len(gold) or 1), 4),
                "types": sorted({gold[i].type for i in members}),
                "topics": sorted({gold[i].topic for i in members}, key=lambda t: (len(t), t)),
                "parts": [_names(gold, m) for m in sorted(parts.values(), key=len, reverse=True)],
            }
        )
    return found
