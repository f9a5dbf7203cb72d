"""Clustering scores against gold chains: B-cubed and pairwise precision, recall and F1."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["Scores", "b_cubed", "pairwise"]


@dataclass(frozen=True)
class Scores:
    """Precision, recall and their harmonic mean, each 0-1."""

    precision: float
    recall: float
    f1: float

    @classmethod
    def of(cls, precision: float, recall: float) -> Scores:
        """Scores with F1 derived (0 when both are 0)."""
        total = precision + recall
        return cls(precision, recall, 2 * precision * recall / total if total else 0.0)


def _contingency(
    gold: Mapping[str, str], predicted: Mapping[str, str]
) -> tuple[Counter[tuple[str, str]], Counter[str], Counter[str]]:
    """Overlap counts of (gold chain, predicted cluster), and the size of each.

    Only gold items are scored; a gold item the prediction lacks is its own singleton cluster,
    so an incomplete prediction costs recall rather than crashing.
    """
    cells: Counter[tuple[str, str]] = Counter()
    for item, chain in gold.items():
        cells[chain, predicted.get(item, f"\x00{item}")] += 1
    chains: Counter[str] = Counter()
    clusters: Counter[str] = Counter()
    for (chain, cluster), n in cells.items():
        chains[chain] += n
        clusters[cluster] += n
    return cells, chains, clusters


def b_cubed(gold: Mapping[str, str], predicted: Mapping[str, str]) -> Scores:
    """B-cubed (Bagga & Baldwin 1998): per-item overlap of its cluster and its chain, averaged.

    Args:
        gold: Item id -> gold chain id.
        predicted: Item id -> predicted cluster id; items not in ``gold`` are ignored.

    Returns:
        The scores; all 1.0 for an empty gold.
    """
    if not gold:
        return Scores(1.0, 1.0, 1.0)
    cells, chains, clusters = _contingency(gold, predicted)
    precision = sum(n * n / clusters[c] for (_, c), n in cells.items()) / len(gold)
    recall = sum(n * n / chains[g] for (g, _), n in cells.items()) / len(gold)
    return Scores.of(precision, recall)


def _pairs(n: int) -> int:
    return n * (n - 1) // 2


def pairwise(gold: Mapping[str, str], predicted: Mapping[str, str]) -> Scores:
    """Precision and recall of the coreferent item pairs (same arguments as ``b_cubed``).

    With no predicted pairs precision is 1.0 (nothing wrong was claimed); with no gold pairs
    recall is 1.0 (nothing was missed).
    """
    cells, chains, clusters = _contingency(gold, predicted)
    correct = sum(_pairs(n) for n in cells.values())
    claimed = sum(_pairs(n) for n in clusters.values())
    expected = sum(_pairs(n) for n in chains.values())
    return Scores.of(correct / claimed if claimed else 1.0, correct / expected if expected else 1.0)
