"""Document versions: every submission of a name, in one total order fixed when it is staged.

A document's id is its name as submitted. Each submission of a name (a batch holding it, or a
deletion naming it) gets the next number of one database sequence when it is staged, so the
order of versions is the order of submissions, whatever order their runs finish or retry in.
A name's *live* version is its newest one; a deletion (no document) as newest version means the
name is deleted until a later submission brings it back. Registering is idempotent: staging
the same batch again keeps the numbers it got the first time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from knowledge_assets.db import tables as t
from knowledge_assets.pipeline.batches import BatchManifest, BatchStorage
from knowledge_assets.pipeline.documents import prepare_inputs

__all__ = [
    "GRAPH_LOCK",
    "Version",
    "batch_position",
    "contributing_batches",
    "deleted_by",
    "deletion_id",
    "forgotten_by",
    "forgotten_names",
    "live_names_of_batch",
    "live_versions",
    "lock_graph",
    "register",
    "register_deletion",
    "register_manifest",
    "versions_of",
]

GRAPH_LOCK = 0x6B612D6C697665
"""Advisory lock held by every transaction that changes which versions the graph holds."""

_DELETION = "d"


@dataclass(frozen=True)
class Version:
    """One submission of a name: by a batch (``document_id`` set) or a deletion (None)."""

    seq: int
    name: str
    batch_id: str
    document_id: str | None

    @property
    def deleted(self) -> bool:
        """Whether this version is a deletion."""
        return self.document_id is None


def lock_graph(connection: sa.Connection) -> None:
    """Serialise with every other change of the graph until the transaction ends."""
    connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": GRAPH_LOCK})


def register(
    connection: sa.Connection, batch_id: str, documents: Iterable[tuple[str, str, str]]
) -> None:
    """Record ``(name, document id, sha256)`` of a batch's documents as versions, in name order.

    A batch registered before keeps its numbers: its documents were submitted back then.
    """
    rows: list[dict[str, str | None]] = [
        {"name": name, "batch_id": batch_id, "document_id": document_id, "sha256": sha}
        for name, document_id, sha in sorted(documents)
    ]
    _insert(connection, rows)


def register_manifest(
    connection: sa.Connection, manifest: BatchManifest, storage: BatchStorage
) -> None:
    """Record a staged batch's documents as versions (``register``), from its manifest.

    Manifests staged before versions existed do not name their documents' ids: those are
    decoded from the stored bytes again.
    """
    entries = list(manifest.documents)
    if any(e.document_id is None or e.sha256 is None for e in entries):
        decoded = prepare_inputs(storage.inputs(manifest), max_bytes=1 << 62)[0]
        documents = [(d.name, d.id, d.sha256) for _, d in decoded]
    else:
        documents = [(e.name, str(e.document_id), str(e.sha256)) for e in entries]
    register(connection, manifest.batch_id, documents)


def register_deletion(connection: sa.Connection, deletion: str, names: Iterable[str]) -> None:
    """Record a deletion of each name as its newest version (idempotent for one deletion id)."""
    rows: list[dict[str, str | None]] = [
        {"name": name, "batch_id": deletion, "document_id": None, "sha256": None}
        for name in sorted(set(names))
    ]
    _insert(connection, rows)


def _insert(connection: sa.Connection, rows: list[dict[str, str | None]]) -> None:
    """Insert the versions not registered yet (looked up first: a conflict uses up a number)."""
    v = t.document_versions.c
    for batch_id in sorted({str(row["batch_id"]) for row in rows}):
        known = set(connection.execute(sa.select(v.name).where(v.batch_id == batch_id)).scalars())
        new = [row for row in rows if row["batch_id"] == batch_id and row["name"] not in known]
        if new:
            statement = insert(t.document_versions).on_conflict_do_nothing(
                constraint="document_versions_batch_name"
            )
            connection.execute(statement, new)


def deletion_id(live: Sequence[Version]) -> str:
    """The id of deleting exactly these live versions: asking twice gives the same deletion."""
    parts = sorted(f"{v.name}\x1e{v.seq}" for v in live)
    return _DELETION + hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:16]


def live_versions(connection: sa.Connection, names: Iterable[str]) -> dict[str, Version]:
    """The newest version of each name that has any."""
    wanted = sorted(set(names))
    v = t.document_versions.c
    found: dict[str, Version] = {}
    for start in range(0, len(wanted), 5000):
        query = (
            sa.select(v.seq, v.name, v.batch_id, v.document_id)
            .where(v.name.in_(wanted[start : start + 5000]))
            .order_by(v.name, v.seq.desc())
            .distinct(v.name)
        )
        for row in connection.execute(query):
            found[row.name] = Version(row.seq, row.name, row.batch_id, row.document_id)
    return found


def versions_of(connection: sa.Connection, names: Iterable[str]) -> list[Version]:
    """Every version of the names, oldest first."""
    wanted = sorted(set(names))
    v = t.document_versions.c
    query = sa.select(v.seq, v.name, v.batch_id, v.document_id).where(v.name.in_(wanted))
    return [
        Version(row.seq, row.name, row.batch_id, row.document_id)
        for row in connection.execute(query.order_by(v.seq))
    ]


def live_names_of_batch(connection: sa.Connection, batch_id: str) -> set[str]:
    """Names whose live version is the one this batch submitted."""
    v = t.document_versions.c
    mine = sa.select(v.name).where(v.batch_id == batch_id)
    query = (
        sa.select(v.name, v.batch_id)
        .where(v.name.in_(mine))
        .order_by(v.name, v.seq.desc())
        .distinct(v.name)
    )
    return {row.name for row in connection.execute(query) if row.batch_id == batch_id}


def batch_position(connection: sa.Connection, batch_id: str) -> int | None:
    """Where the batch stands in submission order: the number of its first version."""
    v = t.document_versions.c
    query = sa.select(sa.func.min(v.seq)).where(v.batch_id == batch_id)
    return connection.execute(query).scalar_one_or_none()


def forgotten_names(connection: sa.Connection, batch_id: str) -> set[str]:
    """Names of the batch that a later deletion deleted: their bytes must not be read again.

    A name deleted and then submitted again stays forgotten in this batch: the deletion
    forgot this batch's version of it, whatever came after.
    """
    v = t.document_versions
    mine, later = v.alias("mine"), v.alias("later")
    query = (
        sa.select(mine.c.name)
        .join(later, later.c.name == mine.c.name)
        .where(
            mine.c.batch_id == batch_id,
            later.c.document_id.is_(None),
            later.c.seq > mine.c.seq,
        )
        .distinct()
    )
    return set(connection.execute(query).scalars())


def deleted_by(connection: sa.Connection, deletion: str) -> dict[str, int]:
    """The names a deletion deletes, with the number of its version of each."""
    v = t.document_versions.c
    query = sa.select(v.name, v.seq).where(v.batch_id == deletion, v.document_id.is_(None))
    return dict(connection.execute(query).tuples().all())


def forgotten_by(connection: sa.Connection, deletion: str) -> list[Version]:
    """The versions a deletion forgets: every earlier version of each name it deletes."""
    mine = deleted_by(connection, deletion)
    return [v for v in versions_of(connection, mine) if not v.deleted and v.seq < mine[v.name]]


def contributing_batches(connection: sa.Connection) -> list[str]:
    """Batches with facts in the graph, in submission order."""
    c = t.batch_contributions.c
    return list(
        connection.execute(sa.select(c.batch_id).order_by(c.position, c.batch_id)).scalars()
    )
