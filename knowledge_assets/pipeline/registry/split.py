"""Undoing merges: split entities out of a canonical, and keep them apart from then on.

A split moves batch entities (with their mentions, which point at them) to a canonical of their
own, rebuilds both profiles and keys from their members, and records a cannot-link pair for
every moved and remaining entity, which every later merge and every rebuild respects.
Nothing is re-extracted.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from knowledge_assets.db import tables as t
from knowledge_assets.pipeline.models import stable_id
from knowledge_assets.pipeline.ontology import Ontology
from knowledge_assets.pipeline.registry.merge import (
    LOCK,
    RegistryReport,
    canonical_row,
    insert_rows,
    merge_new_batches,
    owners,
    update_canonicals,
)
from knowledge_assets.pipeline.registry.profiles import (
    MAX_ALIASES,
    Profile,
    entity_profiles,
    grouped,
)
from knowledge_assets.pipeline.resolution.adjudication import Adjudicator
from knowledge_assets.pipeline.resolution.labels import LabelRules

__all__ = ["SplitError", "rebuild_registry", "split_entities", "undo_merge"]


class SplitError(ValueError):
    """A split that cannot be done as asked; the message says why."""


def split_entities(
    engine: sa.Engine, ontology: Ontology, entity_ids: Sequence[str], *, reason: str = "split"
) -> str:
    """Move ``entity_ids`` out of their canonical into a new one; return the new canonical id.

    Raises:
        SplitError: The entities are not merged, sit in different canonicals, or are all of
            their canonical (nothing would remain to split from).
    """
    moved = sorted(set(entity_ids))
    labels = LabelRules(ontology)
    with engine.begin() as connection:
        connection.execute(sa.text(f"SELECT pg_advisory_xact_lock({LOCK})"))
        source = _one_canonical(connection, moved)
        members = t.canonical_members.c
        everyone = grouped(connection, members.canonical_id, members.entity_id, [source])
        staying = sorted(set(map(str, everyone[source])) - set(moved))
        if not staying:
            raise SplitError(f"{', '.join(moved)} make up all of {source}: nothing to split from")
        target = stable_id("can", "split", *moved)
        evidence = {"split_from": source, "reason": reason}
        connection.execute(
            sa.update(t.canonical_members)
            .where(members.entity_id.in_(moved))
            .values(canonical_id=target, rule="split", score=1.0, evidence=evidence)
        )
        pairs = [(a, b) for a in moved for b in staying]
        rows = [{"entity_id": a, "other_id": b, "reason": reason} for a, b in pairs]
        rows += [{"entity_id": b, "other_id": a, "reason": reason} for a, b in pairs]
        insert_rows(connection, t.canonical_splits, rows)
        _rebuild_profile(connection, source, staying, labels, new=False)
        _rebuild_profile(connection, target, moved, labels, new=True)
    return target


def undo_merge(engine: sa.Engine, ontology: Ontology, entity_id: str) -> str:
    """Undo the merge that put ``entity_id`` into its canonical; return its new canonical id."""
    return split_entities(engine, ontology, [entity_id], reason="undo")


def rebuild_registry(
    engine: sa.Engine,
    ontology: Ontology,
    *,
    threshold: float = 0.9,
    adjudicator: Adjudicator | None = None,
) -> RegistryReport:
    """Forget every merge and merge all batches again; splits are kept and respected."""
    with engine.begin() as connection:
        connection.execute(sa.text(f"SELECT pg_advisory_xact_lock({LOCK})"))
        for table in (*t.REGISTRY_TABLES, t.registry_batches):
            connection.execute(sa.delete(table))
    return merge_new_batches(engine, ontology, threshold=threshold, adjudicator=adjudicator)


def _one_canonical(connection: sa.Connection, entity_ids: list[str]) -> str:
    held = owners(connection, entity_ids)
    missing = sorted(set(entity_ids) - set(held))
    if missing:
        raise SplitError(f"not in the registry: {', '.join(missing)}")
    canonicals = sorted(set(held.values()))
    if len(canonicals) != 1:
        raise SplitError(f"the entities sit in {len(canonicals)} canonicals, not one")
    return canonicals[0]


def _rebuild_profile(
    connection: sa.Connection,
    canonical_id: str,
    members: list[str],
    labels: LabelRules,
    *,
    new: bool,
) -> None:
    """Recompute a canonical's row and keys from its members, the biggest one naming it."""
    entities = entity_profiles(connection, members, labels)
    named = max(entities, key=lambda e: (e.mentions, e.id))
    profile = Profile(
        id=canonical_id,
        name=named.name,
        types=labels.consistent(
            x for e in sorted(entities, key=lambda e: (-e.mentions, e.id)) for x in e.types
        ),
        aliases=tuple(sorted({a for e in entities for a in e.aliases}))[:MAX_ALIASES],
        mentions=sum(e.mentions for e in entities),
        members=len(entities),
    )
    keys = t.canonical_keys
    connection.execute(sa.delete(keys).where(keys.c.canonical_id == canonical_id))
    rows = [{"key": k, "canonical_id": canonical_id} for e in entities for k in e.keys(labels)]
    insert_rows(connection, keys, rows)
    if new:
        insert_rows(connection, t.canonical_entities, [canonical_row(profile, labels)])
    else:
        update_canonicals(connection, [profile], labels)
