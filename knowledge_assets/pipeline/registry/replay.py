"""Keeping the registry in line with a graph whose batches also change and leave.

Merging is incremental and its outcome depends on order: a canonical is named by the entity
that created it, and every merge reads the canonicals earlier ones left. So when a batch the
registry merged changes (a document left it, it was reprocessed) or leaves the graph, the
registry is replayed: every batch still in the graph is merged again, in the order the
registry first merged them, then the new ones in submission order. The result is exactly the
registry that merging the remaining batches in that order from nothing gives: a canonical that
lost its last member is gone, one whose merge depended on a retracted document is re-resolved,
and splits (cannot-link pairs) are kept. With nothing changed, only new batches are merged.
"""

from __future__ import annotations

import sqlalchemy as sa

from knowledge_assets.db import tables as t
from knowledge_assets.pipeline.lifecycle.versions import contributing_batches, lock_graph
from knowledge_assets.pipeline.ontology import Ontology
from knowledge_assets.pipeline.registry.matching import Matcher
from knowledge_assets.pipeline.registry.merge import LOCK, RegistryReport, merge_batch
from knowledge_assets.pipeline.resolution.adjudication import Adjudicator
from knowledge_assets.pipeline.resolution.labels import LabelRules

__all__ = ["needs_replay", "sync_registry", "sync_registry_in"]


def sync_registry(
    engine: sa.Engine,
    ontology: Ontology,
    *,
    threshold: float = 0.9,
    adjudicator: Adjudicator | None = None,
) -> RegistryReport:
    """Merge the new batches, or replay the registry if a merged batch changed; one transaction."""
    with engine.begin() as connection:
        return sync_registry_in(connection, Matcher(LabelRules(ontology), threshold, adjudicator))


def sync_registry_in(connection: sa.Connection, matcher: Matcher) -> RegistryReport:
    """``sync_registry`` inside the caller's transaction (a deletion's, say)."""
    lock_graph(connection)  # the graph must not change while it is read
    connection.execute(sa.text(f"SELECT pg_advisory_xact_lock({LOCK})"))
    merged, stale = _merged(connection)
    present = contributing_batches(connection)
    report = RegistryReport()
    if stale or any(b not in present for b in merged):
        kept = [b for b in merged if b in present]
        for table in (*t.REGISTRY_TABLES, t.registry_batches):
            connection.execute(sa.delete(table))
        report.replayed = True
        order = [*kept, *(b for b in present if b not in set(kept))]
    else:
        order = [b for b in present if b not in set(merged)]
    for batch_id in order:
        merge_batch(connection, batch_id, matcher, report)
        _member_documents(connection, batch_id)
        report.batches.append(batch_id)
    return report


def needs_replay(connection: sa.Connection) -> bool:
    """Whether a merged batch changed or left the graph since it was merged."""
    merged, stale = _merged(connection)
    return stale or not set(merged) <= set(contributing_batches(connection))


def _merged(connection: sa.Connection) -> tuple[list[str], bool]:
    """Merged batches in merge order, and whether any of them changed since."""
    rb = t.registry_batches.c
    rows = connection.execute(sa.select(rb.batch_id, rb.stale).order_by(rb.position)).all()
    return [row.batch_id for row in rows], any(row.stale for row in rows)


def _member_documents(connection: sa.Connection, batch_id: str) -> None:
    """Record on each new member the document versions that support its entity."""
    m, s = t.canonical_members.c, t.entity_support.c
    connection.execute(
        sa.update(t.canonical_members)
        .where(m.batch_id == batch_id, s.entity_id == m.entity_id, s.batch_id == m.batch_id)
        .values(documents=s.documents)
    )
