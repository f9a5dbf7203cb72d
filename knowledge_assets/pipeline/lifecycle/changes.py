"""Rows added and removed per table by one change of the graph, as ingests and deletions report."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

__all__ = ["TableChanges", "delete_keys", "insert_rows"]

_SLICE = 2000


@dataclass
class TableChanges:
    """Rows added and removed, by table name. A changed row counts once each way."""

    added: Counter[str] = field(default_factory=Counter)
    removed: Counter[str] = field(default_factory=Counter)
    documents: set[str] = field(default_factory=set)
    """Documents whose membership in some batch changed: their rows may have to go."""

    def __iadd__(self, other: TableChanges) -> TableChanges:
        self.added.update(other.added)
        self.removed.update(other.removed)
        self.documents |= other.documents
        return self

    @property
    def total_added(self) -> int:
        """Rows added across all tables."""
        return sum(self.added.values())

    @property
    def total_removed(self) -> int:
        """Rows removed across all tables."""
        return sum(self.removed.values())

    def record(self, table: sa.Table, added: int = 0, removed: int = 0) -> None:
        """Count rows added to and removed from ``table``."""
        if added:
            self.added[table.name] += added
        if removed:
            self.removed[table.name] += removed


def insert_rows(
    connection: sa.Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]]
) -> int:
    """Insert rows (none may exist), in slices; the number inserted."""
    for start in range(0, len(rows), _SLICE):
        connection.execute(insert(table), list(rows[start : start + _SLICE]))
    return len(rows)


def delete_keys(connection: sa.Connection, table: sa.Table, keys: Iterable[tuple[Any, ...]]) -> int:
    """Delete the rows with these primary keys, in slices; the number deleted."""
    columns = list(table.primary_key.columns)
    wanted = list(keys)
    deleted = 0
    for start in range(0, len(wanted), _SLICE):
        part = wanted[start : start + _SLICE]
        if len(columns) == 1:
            condition = columns[0].in_([k[0] for k in part])
        else:
            condition = sa.tuple_(*columns).in_(part)
        deleted += connection.execute(sa.delete(table).where(condition)).rowcount
    return deleted
