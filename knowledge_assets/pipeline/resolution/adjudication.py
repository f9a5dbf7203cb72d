"""The hook for a second opinion on uncertain pairs, e.g. an LLM asked "same entity?"."""

from __future__ import annotations

from typing import Protocol

__all__ = ["UNCERTAIN_BAND", "Adjudicator", "NoAdjudicator"]

UNCERTAIN_BAND = 0.1
"""Fuzzy scores this far below the merge threshold are uncertain: only an adjudicator merges."""


class Adjudicator(Protocol):
    """Decides pairs the rules find close but not close enough ("Bettie Page"/"Betty Page")."""

    def same(self, a: str, b: str, *, label: str, score: float) -> bool | None:
        """True to merge, False to keep apart, None when it cannot tell (kept apart)."""
        ...


class NoAdjudicator:
    """The default: no second opinion, so uncertain pairs stay apart and runs stay offline."""

    def same(self, a: str, b: str, *, label: str, score: float) -> bool | None:
        """Never decides."""
        return None
