"""Cross-batch resolution: merge each newly ingested batch into a registry of canonical entities.

Only batches not yet merged are read, and each entity is matched by an index lookup on its
blocking keys (root type + normalised name or alias), so the cost grows with the new batch, not
with the registry. Running it again with nothing new changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from knowledge_assets.db import tables as t
from knowledge_assets.pipeline.models import stable_id
from knowledge_assets.pipeline.ontology import Ontology
from knowledge_assets.pipeline.resolution.normalize import normalize_name


@dataclass
class RegistryReport:
    """What one merge did."""

    batches: list[str] = field(default_factory=list)
    entities: int = 0
    joined: int = 0
    created: int = 0


@dataclass(frozen=True)
class _Candidate:
    entity_id: str
    name: str
    root: str
    name_key: str
    alias_keys: frozenset[str]


def pending_batches(connection: sa.Connection) -> list[str]:
    """Ingested batches the registry has not merged yet, oldest id first."""
    merged = sa.select(t.registry_batches.c.batch_id)
    query = (
        sa.select(t.batch_documents.c.batch_id)
        .where(t.batch_documents.c.batch_id.not_in(merged))
        .distinct()
        .order_by(t.batch_documents.c.batch_id)
    )
    return list(connection.execute(query).scalars())


def merge_new_batches(engine: sa.Engine, ontology: Ontology) -> RegistryReport:
    """Merge every pending batch, each in its own transaction."""
    report = RegistryReport()
    with engine.connect() as connection:
        batches = pending_batches(connection)
    for batch_id in batches:
        with engine.begin() as connection:
            # Serialise registry writers: two merges at once must not create twin canonicals.
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(7261626)"))
            if batch_id in _merged(connection, [batch_id]):
                continue
            _merge_batch(connection, batch_id, ontology, report)
        report.batches.append(batch_id)
    return report


def _merged(connection: sa.Connection, batch_ids: list[str]) -> set[str]:
    query = sa.select(t.registry_batches.c.batch_id).where(
        t.registry_batches.c.batch_id.in_(batch_ids)
    )
    return set(connection.execute(query).scalars())


def _merge_batch(
    connection: sa.Connection, batch_id: str, ontology: Ontology, report: RegistryReport
) -> None:
    candidates = _candidates(connection, batch_id, ontology)
    known = _lookup(connection, {k for c in candidates for k in (c.name_key, *c.alias_keys)})
    members: list[dict[str, object]] = []
    keys: list[dict[str, object]] = []
    created: dict[str, dict[str, object]] = {}
    for candidate in candidates:
        canonical_id, rule = _match(candidate, known)
        if canonical_id is None:
            canonical_id, rule = stable_id("can", candidate.name_key), "new"
            created.setdefault(
                canonical_id,
                {"id": canonical_id, "name": candidate.name, "root_type": candidate.root},
            )
        for key in (candidate.name_key, *candidate.alias_keys):
            known.setdefault(key, set()).add(canonical_id)
            keys.append({"key": key, "canonical_id": canonical_id})
        member: dict[str, object] = {"entity_id": candidate.entity_id}
        member.update(canonical_id=canonical_id, batch_id=batch_id, rule=rule)
        members.append(member)
        report.joined += rule != "new"
    _insert(connection, t.canonical_entities, list(created.values()))
    _insert(connection, t.canonical_members, members)
    _insert(connection, t.canonical_keys, keys)
    _insert(connection, t.registry_batches, [{"batch_id": batch_id, "entities": len(members)}])
    report.entities += len(members)
    report.created += len(created)


def _match(candidate: _Candidate, known: dict[str, set[str]]) -> tuple[str | None, str]:
    by_name = known.get(candidate.name_key, set())
    if len(by_name) == 1:
        return next(iter(by_name)), "name"
    if by_name:
        return None, "new"
    by_alias = set().union(*(known.get(k, set()) for k in candidate.alias_keys))
    if len(by_alias) == 1:
        return next(iter(by_alias)), "alias"
    return None, "new"


def _candidates(connection: sa.Connection, batch_id: str, ontology: Ontology) -> list[_Candidate]:
    in_batch = sa.select(t.mentions.c.entity_id).where(t.mentions.c.batch_id == batch_id).distinct()
    already = sa.select(t.canonical_members.c.entity_id)
    rows = connection.execute(
        sa.select(t.entities.c.id, t.entities.c.canonical_name)
        .where(t.entities.c.id.in_(in_batch), t.entities.c.id.not_in(already))
        .order_by(t.entities.c.id)
    ).all()
    ids = [r.id for r in rows]
    types = _grouped(connection, t.entity_types, "type", ids)
    aliases = _grouped(connection, t.entity_aliases, "alias", ids)
    candidates = []
    for entity_id, name in rows:
        root = min((ontology.root_of(k) for k in types.get(entity_id, ["Thing"])), default="Thing")
        candidates.append(
            _Candidate(
                entity_id=entity_id,
                name=name,
                root=root,
                name_key=f"{root}|{normalize_name(name)}",
                alias_keys=frozenset(
                    f"{root}|{normalize_name(a)}" for a in aliases.get(entity_id, [])
                ),
            )
        )
    return candidates


def _grouped(
    connection: sa.Connection, table: sa.Table, column: str, ids: list[str]
) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for start in range(0, len(ids), 5000):
        query = sa.select(table.c.entity_id, table.c[column]).where(
            table.c.entity_id.in_(ids[start : start + 5000])
        )
        for entity_id, value in connection.execute(query):
            grouped.setdefault(entity_id, []).append(value)
    return grouped


def _lookup(connection: sa.Connection, keys: Iterable[str]) -> dict[str, set[str]]:
    wanted = sorted(keys)
    known: dict[str, set[str]] = {}
    for start in range(0, len(wanted), 5000):
        query = sa.select(t.canonical_keys.c.key, t.canonical_keys.c.canonical_id).where(
            t.canonical_keys.c.key.in_(wanted[start : start + 5000])
        )
        for key, canonical_id in connection.execute(query):
            known.setdefault(key, set()).add(canonical_id)
    return known


def _insert(connection: sa.Connection, table: sa.Table, rows: list[dict[str, object]]) -> None:
    if rows:
        connection.execute(insert(table).on_conflict_do_nothing(), rows)


def canonical_of(engine: sa.Engine) -> dict[str, str]:
    """Entity id → canonical id for every merged entity."""
    with engine.connect() as connection:
        query = sa.select(t.canonical_members.c.entity_id, t.canonical_members.c.canonical_id)
        return dict(connection.execute(query).all())
