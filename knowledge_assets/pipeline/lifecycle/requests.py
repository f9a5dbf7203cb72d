"""Asking for a deletion: the names are checked and the deletion takes its place in the order.

A deletion is a version of each name it deletes, numbered when it is asked for: a batch
submitted before it loses the document, one submitted after brings it back. Its id is derived
from the versions it deletes, so asking twice (a retried request, two API replicas) gives the
same deletion, and asking again for names already deleted answers with that earlier deletion.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import sqlalchemy as sa

from knowledge_assets.pipeline.documents import document_name
from knowledge_assets.pipeline.lifecycle.versions import (
    deletion_id,
    live_versions,
    lock_graph,
    register_deletion,
)

__all__ = ["DeletionRequest", "UnknownDocuments", "request_deletion"]


class UnknownDocuments(KeyError):
    """No document was ever submitted under these names."""

    def __init__(self, names: Iterable[str]) -> None:
        self.names = sorted(names)
        super().__init__(", ".join(self.names))

    def __str__(self) -> str:
        listed = ", ".join(repr(n) for n in self.names)
        return f"no document named {listed} was ever submitted"


@dataclass
class DeletionRequest:
    """A deletion: its id, the names it deletes, and names an earlier deletion deleted."""

    deletion_id: str | None
    names: list[str] = field(default_factory=list)
    earlier: dict[str, str] = field(default_factory=dict)

    @property
    def latest(self) -> str | None:
        """The deletion to report on: this one, or else the most recent earlier one."""
        return self.deletion_id or (max(self.earlier.values()) if self.earlier else None)


def request_deletion(engine: sa.Engine, names: Iterable[str]) -> DeletionRequest:
    """Register a deletion of the names' live versions (see the module docstring).

    Raises:
        UnknownDocuments: some name has never been submitted.
    """
    wanted = sorted({document_name(n) for n in names})
    with engine.begin() as connection:
        lock_graph(connection)
        live = live_versions(connection, wanted)
        unknown = [n for n in wanted if n not in live]
        if unknown:
            raise UnknownDocuments(unknown)
        earlier = {n: v.batch_id for n, v in live.items() if v.deleted}
        deleting = [v for v in live.values() if not v.deleted]
        if not deleting:
            return DeletionRequest(None, [], earlier)
        identity = deletion_id(deleting)
        register_deletion(connection, identity, [v.name for v in deleting])
    return DeletionRequest(identity, sorted(v.name for v in deleting), earlier)
