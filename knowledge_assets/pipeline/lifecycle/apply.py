"""The two changes of a living graph, each one transaction: ingest a batch, delete documents.

Ingesting a batch applies only the documents whose version in it is live (a newer version
elsewhere wins, whatever order the runs finish in) and takes every document it brings out of
the batch that held its older version, which is rebuilt without it: a reader sees a document
either old or new, never half of each. Deleting applies a deletion version the same way, then
forgets: the deleted versions' chunks and every cached extraction only they used, and the
registry is replayed in the same transaction. Both take the graph lock, so changes apply one
after the other, and both check the caller's fence first.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field

import sqlalchemy as sa

from knowledge_assets.db import tables as t
from knowledge_assets.failpoints import failpoint
from knowledge_assets.pipeline.cache import ExtractionCache
from knowledge_assets.pipeline.extractors.factory import PayloadReader
from knowledge_assets.pipeline.lifecycle.changes import TableChanges
from knowledge_assets.pipeline.lifecycle.content import BatchContent, GraphBuilder
from knowledge_assets.pipeline.lifecycle.derive import reconcile_documents
from knowledge_assets.pipeline.lifecycle.fence import Fence
from knowledge_assets.pipeline.lifecycle.rebuild import Rechunk, stored_content
from knowledge_assets.pipeline.lifecycle.rows import document_row
from knowledge_assets.pipeline.lifecycle.swap import held_documents, record_chunks, swap_batch
from knowledge_assets.pipeline.lifecycle.versions import (
    Version,
    batch_position,
    deleted_by,
    forgotten_by,
    live_names_of_batch,
    live_versions,
    lock_graph,
    register,
)
from knowledge_assets.pipeline.models import ExtractorInfo, ValidatedGraph
from knowledge_assets.pipeline.registry.matching import Matcher
from knowledge_assets.pipeline.registry.merge import RegistryReport
from knowledge_assets.pipeline.registry.replay import sync_registry_in

__all__ = ["DeletionOutcome", "IngestOutcome", "Recompute", "delete", "ingest"]


@dataclass(frozen=True)
class Recompute:
    """How a batch is resolved again from what the graph stores, without extracting."""

    builder: GraphBuilder
    reader: Callable[[ExtractorInfo], PayloadReader]
    rechunk: Rechunk

    def without(
        self, connection: sa.Connection, batch_id: str, names: Collection[str]
    ) -> TableChanges:
        """Rebuild a batch the graph holds without the named documents (retired if none stay)."""
        keep = set(_names_of(connection, batch_id)) - set(names)
        position = batch_position(connection, batch_id) or 0
        if not keep:
            return swap_batch(connection, batch_id, None, position)
        content = stored_content(connection, batch_id, keep, self.reader, self.rechunk)
        changes = swap_batch(connection, batch_id, (content, self.builder.build(content)), position)
        changes += reconcile_documents(connection, document_row(content), changes.documents)
        return changes


@dataclass
class IngestOutcome:
    """What ingesting a batch changed, and which of its documents newer versions overrode."""

    changes: TableChanges
    superseded: list[str] = field(default_factory=list)
    displaced: dict[str, list[str]] = field(default_factory=dict)


def ingest(
    engine: sa.Engine,
    content: BatchContent,
    graph: ValidatedGraph,
    recompute: Recompute,
    fence: Fence | None = None,
) -> IngestOutcome:
    """Apply the batch's live documents to the graph in one transaction (see module docstring).

    ``graph`` is the batch's graph over all its documents; it is computed again over the live
    ones only if some are not.
    """
    batch_id = content.batch_id
    with engine.begin() as connection:
        if fence is not None:
            fence.check(connection)
        lock_graph(connection)
        register(connection, batch_id, [(d.name, d.id, d.sha256) for d in content.documents])
        record_chunks(connection, content.chunks)
        live = live_names_of_batch(connection, batch_id) & content.names
        changes = TableChanges()
        displaced = {
            other: sorted(names)
            for other, names in held_documents(connection, live).items()
            if other != batch_id
        }
        for other, names in sorted(displaced.items()):
            changes += recompute.without(connection, batch_id=other, names=names)
        own = content if live == content.names else content.only(live)
        position = batch_position(connection, batch_id) or 0
        if content.documents and not live:
            changes += swap_batch(connection, batch_id, None, position)
        else:
            mine = graph if own is content else recompute.builder.build(own)
            changes += swap_batch(connection, batch_id, (own, mine), position)
        changes += reconcile_documents(connection, document_row(own), changes.documents)
        failpoint("ingested_graph.commit")  # a crash here must leave no row behind
    return IngestOutcome(changes, sorted(content.names - live), displaced)


@dataclass
class DeletionOutcome:
    """What a deletion retracted and forgot."""

    changes: TableChanges
    deleted: list[str]
    superseded: list[str]
    forgotten: list[Version]
    forgotten_cache_entries: int
    registry: RegistryReport


def delete(
    engine: sa.Engine,
    deletion: str,
    recompute: Recompute,
    matcher: Matcher,
    fence: Fence | None = None,
    chunk_hashes: Iterable[str] = (),
) -> DeletionOutcome:
    """Apply deletion ``deletion`` (its versions are registered) and forget what it deleted.

    Every version of a deleted name older than the deletion is forgotten: its chunk records,
    and the cached extractions of its chunks (those in the records and ``chunk_hashes``, e.g.
    from stored asset values) that no other document's chunk shares. A name submitted again
    after the deletion keeps that newer version: only the older ones are retracted.
    """
    with engine.begin() as connection:
        if fence is not None:
            fence.check(connection)
        lock_graph(connection)
        mine = deleted_by(connection, deletion)
        live = live_versions(connection, mine)
        deleted = sorted(n for n in mine if live[n].batch_id == deletion)
        changes = TableChanges()
        for holder, names in sorted(held_documents(connection, deleted).items()):
            changes += recompute.without(connection, holder, names)
        changes += reconcile_documents(connection, [], changes.documents)
        forgotten = forgotten_by(connection, deletion)
        documents = sorted({str(v.document_id) for v in forgotten})
        entries = _forget_chunks(connection, documents, chunk_hashes)
        registry = sync_registry_in(connection, matcher)
        failpoint("document_deletions.commit")  # a crash here must leave no change behind
    superseded = sorted(set(mine) - set(deleted))
    return DeletionOutcome(changes, deleted, superseded, forgotten, entries, registry)


def _forget_chunks(connection: sa.Connection, documents: list[str], extra: Iterable[str]) -> int:
    """Drop the documents' chunk records and the cache entries no other chunk shares."""
    c = t.chunks.c
    hashes = set(extra)
    hashes.update(
        connection.execute(sa.select(c.sha256).where(c.document_id.in_(documents))).scalars()
    )
    connection.execute(sa.delete(t.chunks).where(c.document_id.in_(documents)))
    shared = set(
        connection.execute(sa.select(c.sha256).where(c.sha256.in_(sorted(hashes)))).scalars()
    )
    return ExtractionCache.forget(connection, hashes - shared)


def _names_of(connection: sa.Connection, batch_id: str) -> list[str]:
    d, bd = t.documents.c, t.batch_documents.c
    query = (
        sa.select(d.name)
        .join(t.batch_documents, bd.document_id == d.id)
        .where(bd.batch_id == batch_id)
    )
    return list(connection.execute(query).scalars())
