"""Leave-topics-out: tune on some topics of a gold corpus, score on the topics left out.

A rule that only helps on the topics it was looked at with does not generalise. Topics in
numeric order are dealt round-robin into folds; for each fold, the resolution threshold is
chosen on the other topics (the only tuned parameter) and the resolver and the head-match
baseline are scored on the fold's topics alone, resolved as ``knowledge resolve`` would:
a batch per topic and one registry.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from statistics import mean
from typing import Any

from knowledge_assets.evaluation.gold import GoldMention
from knowledge_assets.evaluation.resolution import (
    Run,
    baseline_head,
    named_gold,
    resolve_gold,
    scores,
    topic_order,
)

__all__ = ["THRESHOLDS", "evaluate_folds", "topic_folds"]

THRESHOLDS = (0.8, 0.85, 0.9, 0.95)
"""The fuzzy thresholds tuning chooses from on the training topics."""


def topic_folds(topics: Sequence[str], k: int) -> list[list[str]]:
    """The topics in numeric order dealt round-robin into ``k`` folds (``k`` >= 2)."""
    if not 2 <= k <= len(set(topics)):
        raise ValueError(f"folds must be between 2 and the number of topics, not {k}")
    ordered = sorted(set(topics), key=topic_order)
    return [ordered[n::k] for n in range(k)]


def _f1(gold: Sequence[GoldMention], run: Run) -> float:
    truth = {str(i): g.chain for i, g in enumerate(gold)}
    return float(scores(truth, resolve_gold(gold, run))["b_cubed"]["f1"])


def _tuned(train: Sequence[GoldMention], run: Run) -> float:
    """The threshold of ``THRESHOLDS`` that scores best on ``train`` (the default on ties)."""
    found = {t: _f1(train, replace(run, threshold=t)) for t in THRESHOLDS}
    return max(THRESHOLDS, key=lambda t: (found[t], -abs(t - run.threshold)))


def _fold(gold: Sequence[GoldMention], held: list[str], run: Run) -> dict[str, Any]:
    train = [g for g in gold if g.topic not in held]
    test = [g for g in gold if g.topic in held]
    truth = {str(i): g.chain for i, g in enumerate(test)}
    tuned = replace(run, threshold=_tuned(train, run))
    return {
        "topics": held,
        "mentions": len(test),
        "threshold": tuned.threshold,
        "resolver": scores(truth, resolve_gold(test, tuned)),
        "baseline_head": scores(truth, baseline_head(test)),
    }


def evaluate_folds(root: Path, run: Run, k: int) -> dict[str, Any]:
    """Leave-topics-out scores of a gold corpus: each fold's, and their mean B-cubed F1.

    Args:
        root: The corpus, in the ecbplus-dev format.
        run: The ontology, database server, default threshold, rules turned off, batching.
        k: Number of folds.
    """
    gold = named_gold(root)
    folds = [_fold(gold, held, run) for held in topic_folds([g.topic for g in gold], k)]
    return {
        "folds": folds,
        "folds_mean_resolver_f1": round(mean(f["resolver"]["b_cubed"]["f1"] for f in folds), 4),
        "folds_mean_baseline_head_f1": round(
            mean(f["baseline_head"]["b_cubed"]["f1"] for f in folds), 4
        ),
    }
