"""Shared helpers: the evaluation corpus, alternating timed pairs, medians."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ecbplus-dev" / "docs"


class BenchmarkSkipped(Exception):
    """A benchmark cannot run here; the message says why."""


def corpus_paths(limit: int | None = None) -> list[Path]:
    """The first ``limit`` ecbplus-dev documents, sorted; skipped when the corpus is absent."""
    if not CORPUS.is_dir():
        raise BenchmarkSkipped(f"evaluation corpus not found at {CORPUS}")
    paths = sorted(CORPUS.glob("*.txt"))
    return paths[:limit] if limit else paths


def alternate(
    baseline: Callable[[], None], candidate: Callable[[], None], pairs: int = 3
) -> tuple[list[float], list[float]]:
    """Time both sides ``pairs`` times, alternating, so drift hits both equally."""
    base, cand = [], []
    for _ in range(pairs):
        base.append(_timed(baseline))
        cand.append(_timed(candidate))
    return base, cand


def median_ratio(base: list[float], cand: list[float]) -> float:
    """Median of per-pair ratios candidate/baseline."""
    return statistics.median(c / b for b, c in zip(base, cand, strict=True))


def _timed(fn: Callable[[], None]) -> float:
    began = time.perf_counter()
    fn()
    return time.perf_counter() - began
