"""Numbers with their nouns, as people write them: "1 relation", "2 relations"."""

from __future__ import annotations

from datetime import datetime

__all__ = ["counted", "timestamp"]

_IRREGULAR = {"entity": "entities", "batch": "batches", "was": "were"}


def counted(number: int, noun: str) -> str:
    """``number`` and ``noun``, the noun in the plural unless the number is one."""
    if number == 1:
        return f"1 {noun}"
    return f"{number} {_IRREGULAR.get(noun, noun + 's')}"


def timestamp(moment: datetime | None) -> str:
    """A moment in local time to the second, or ``?`` when unknown."""
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S") if moment else "?"
