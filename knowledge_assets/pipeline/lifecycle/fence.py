"""The fence every graph-writing transaction checks first: only the current attempt may write."""

from __future__ import annotations

from typing import Protocol

import sqlalchemy as sa

__all__ = ["Fence", "StaleAttempt"]


class StaleAttempt(RuntimeError):
    """A newer attempt owns this batch's writes; this one must not commit."""


class Fence(Protocol):
    """Decides, inside the writing transaction, whether this attempt may still write.

    An implementation must hold whatever lock keeps its answer true until the transaction ends.
    """

    def check(self, connection: sa.Connection) -> None:
        """Return if this attempt is current; raise ``StaleAttempt`` otherwise."""
        ...
