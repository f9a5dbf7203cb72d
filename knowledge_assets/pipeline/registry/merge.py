"""Merging newly ingested batches into the registry: index lookups, never a scan of it.

Each new entity reads only the canonicals its blocking keys point at: its exact name and
acronym keys first, then, only for names the registry does not hold yet, its phonetic and
initial keys, a bounded number per key. So merging a batch costs about the same whether the
registry holds a thousand canonicals or a million. A batch is merged once: running again
with nothing new changes nothing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, insert

from knowledge_assets.db import tables as t
from knowledge_assets.pipeline.models import stable_id
from knowledge_assets.pipeline.ontology import Ontology
from knowledge_assets.pipeline.registry.keys import is_exact
from knowledge_assets.pipeline.registry.matching import Match, Matcher
from knowledge_assets.pipeline.registry.profiles import (
    MAX_ALIASES,
    Profile,
    batch_profiles,
    canonical_profiles,
    grouped,
)
from knowledge_assets.pipeline.resolution.ablation import ALL_ON, Rule
from knowledge_assets.pipeline.resolution.adjudication import Adjudicator
from knowledge_assets.pipeline.resolution.labels import LabelRules

__all__ = [
    "PER_KEY",
    "RegistryReport",
    "canonical_of",
    "canonical_row",
    "insert_rows",
    "merge_batch",
    "merge_new_batches",
    "owners",
    "pending_batches",
    "split_partners",
    "update_canonicals",
]

PER_KEY = 20
"""Canonicals read per exact-name key: more than this many namesakes is not distinctive."""

PER_WEAK_KEY = 5
"""Canonicals read per phonetic or initial key, asked only for entities whose name is new.

Such keys are shared by more canonicals the bigger the registry grows; reading a handful keeps
the cost of an entity bounded once the registry is large."""

LOCK = 7261626
"""Advisory lock serialising registry writers: two merges at once must not create twins."""


@dataclass
class RegistryReport:
    """What one merge did."""

    batches: list[str] = field(default_factory=list)
    entities: int = 0
    joined: int = 0
    created: int = 0


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


def merge_new_batches(
    engine: sa.Engine,
    ontology: Ontology,
    *,
    threshold: float = 0.9,
    adjudicator: Adjudicator | None = None,
    without: frozenset[Rule] = ALL_ON,
) -> RegistryReport:
    """Merge every pending batch, each in its own transaction (``without``: ``ablation``)."""
    report = RegistryReport()
    matcher = Matcher(LabelRules(ontology), threshold, adjudicator, without)
    with engine.connect() as connection:
        batches = pending_batches(connection)
    for batch_id in batches:
        with engine.begin() as connection:
            connection.execute(sa.text(f"SELECT pg_advisory_xact_lock({LOCK})"))
            if _merged(connection, batch_id):
                continue
            merge_batch(connection, batch_id, matcher, report)
        report.batches.append(batch_id)
    return report


def merge_batch(
    connection: sa.Connection, batch_id: str, matcher: Matcher, report: RegistryReport
) -> None:
    """Merge one batch inside the caller's transaction (``merge_new_batches`` commits each)."""
    _BatchMerge(connection, batch_id, matcher).run(report)


def _merged(connection: sa.Connection, batch_id: str) -> bool:
    query = sa.select(t.registry_batches.c.batch_id).where(
        t.registry_batches.c.batch_id == batch_id
    )
    return connection.execute(query).first() is not None


class _BatchMerge:
    """One batch's merge: candidates by key, one decision per entity, writes in bulk."""

    def __init__(self, connection: sa.Connection, batch_id: str, matcher: Matcher) -> None:
        self.connection = connection
        self.batch_id = batch_id
        self.matcher = matcher
        self.labels = matcher.labels
        self.known: dict[str, set[str]] = defaultdict(set)
        self.profiles: dict[str, Profile] = {}
        self.created: dict[str, Profile] = {}
        self.touched: dict[str, list[Profile]] = defaultdict(list)
        self.members: list[dict[str, object]] = []
        self.keys: set[tuple[str, str]] = set()
        self.owner: dict[str, str] = {}
        self.lookups: dict[str, frozenset[str]] = {}
        self.claimed: set[str] = set()

    def run(self, report: RegistryReport) -> None:
        entities = batch_profiles(self.connection, self.batch_id, self.labels)
        keys = {e.id: e.lookup_keys(self.labels) for e in entities}
        self.lookups = keys
        self._lookup({k for found in keys.values() for k in found if is_exact(k)}, PER_KEY)
        unnamed = [
            e for e in entities if not any(self.known.get(k) for k in keys[e.id] if is_exact(k))
        ]
        self._lookup({k for e in unnamed for k in keys[e.id] if not is_exact(k)}, PER_WEAK_KEY)
        ids = {c for found in self.known.values() for c in found}
        self.profiles.update(canonical_profiles(self.connection, ids))
        partners = split_partners(self.connection, [e.id for e in entities])
        flat = sorted({p for found in partners.values() for p in found})
        self.owner.update(owners(self.connection, flat))
        for entity in entities:
            self._place(
                entity, {self.owner[p] for p in partners.get(entity.id, ()) if p in self.owner}
            )
        self._write()
        report.entities += len(entities)
        report.created += len(self.created)
        report.joined += len(entities) - len(self.created)

    def _place(self, entity: Profile, apart: set[str]) -> None:
        """Put one entity into the canonical it matches best, or into a new one.

        Two entities of one batch with the same name were kept apart by in-batch resolution,
        which saw their documents (two notes that each say only "Hartmann", about two people);
        the registry, which sees only names, does not merge them on that name alone.
        """
        keys = entity.keys(self.labels)
        wanted = self.lookups[entity.id]
        ids = sorted({c for k in wanted for c in self.known.get(k, ())} - apart)
        candidates = [self.profiles[c] for c in ids if c in self.profiles]
        match = self.matcher.best(entity, candidates)
        if self._same_name_apart(match):
            others = [c for c in candidates if c.id not in self.claimed]
            match = self.matcher.best(entity, others)
        if match is None:
            canonical = Profile(
                id=stable_id("can", entity.id),
                name=entity.name,
                types=entity.types,
                aliases=entity.aliases,
                mentions=entity.mentions,
                members=1,
            )
            self.created[canonical.id] = canonical
            self.profiles[canonical.id] = canonical
            match = Match(canonical.id, "new", 1.0, {"entity_name": entity.name})
        else:
            self._grow(self.profiles[match.canonical_id], entity)
        self.owner[entity.id] = match.canonical_id
        self.claimed.add(match.canonical_id)
        for key in keys:
            self.known[key].add(match.canonical_id)
            self.keys.add((key, match.canonical_id))
        self.members.append(
            {
                "entity_id": entity.id,
                "canonical_id": match.canonical_id,
                "batch_id": self.batch_id,
                "rule": match.rule,
                "score": match.score,
                "evidence": match.evidence,
                "mentions": entity.mentions,
            }
        )

    def _same_name_apart(self, match: Match | None) -> bool:
        """A same-name match with a canonical that took an entity of this batch already."""
        if match is None or Rule.SAME_NAME_APART in self.matcher.without:
            return False
        return match.rule == "exact" and match.canonical_id in self.claimed

    def _grow(self, canonical: Profile, entity: Profile) -> None:
        """Fold the entity into the canonical's profile, in memory, for later entities.

        The side with more mentions decides the types; the other's that do not fit are dropped,
        so a canonical never carries two disjoint types (``LabelRules.consistent``).
        """
        sides = sorted((canonical, entity), key=lambda p: -p.mentions)
        canonical.types = self.labels.consistent(t for side in sides for t in side.types)
        canonical.aliases = tuple(sorted({*canonical.aliases, *entity.aliases}))[:MAX_ALIASES]
        canonical.mentions += entity.mentions
        canonical.members += 1
        self.matcher.invalidate(canonical.id)
        if canonical.id not in self.created:
            self.touched[canonical.id].append(entity)

    def _lookup(self, keys: Iterable[str], per_key: int) -> None:
        """Canonicals under the keys, at most ``per_key`` each, by the primary-key index."""
        wanted = sorted(keys)
        for start in range(0, len(wanted), 5000):
            rows = self.connection.execute(
                sa.text(
                    "SELECT k.key, c.canonical_id FROM unnest(:keys) AS k(key) "
                    "CROSS JOIN LATERAL (SELECT canonical_id FROM knowledge.canonical_keys "
                    "WHERE key = k.key ORDER BY canonical_id LIMIT :per_key) AS c"
                ).bindparams(sa.bindparam("keys", type_=ARRAY(sa.Text))),
                {"keys": wanted[start : start + 5000], "per_key": per_key},
            )
            for key, canonical_id in rows:
                self.known[key].add(canonical_id)

    def _write(self) -> None:
        rows = [canonical_row(p, self.labels) for p in self.created.values()]
        insert_rows(self.connection, t.canonical_entities, rows)
        touched = [self.profiles[c] for c in sorted(self.touched)]
        update_canonicals(self.connection, touched, self.labels)
        insert_rows(self.connection, t.canonical_members, self.members)
        keys = [{"key": k, "canonical_id": c} for k, c in sorted(self.keys)]
        insert_rows(self.connection, t.canonical_keys, keys)
        done = [{"batch_id": self.batch_id, "entities": len(self.members)}]
        insert_rows(self.connection, t.registry_batches, done)


def canonical_row(profile: Profile, labels: LabelRules) -> dict[str, object]:
    """The ``canonical_entities`` row of a profile."""
    return {
        "id": profile.id,
        "name": profile.name,
        "root_type": labels.root(profile.label),
        "types": list(profile.types),
        "aliases": list(profile.aliases),
        "mention_count": profile.mentions,
        "members": profile.members,
    }


def update_canonicals(
    connection: sa.Connection, profiles: Sequence[Profile], labels: LabelRules
) -> None:
    """Rewrite canonicals' names, types, aliases and counts from their profiles, in one go."""
    if not profiles:
        return
    rows = [{**canonical_row(p, labels), "canonical_id": p.id} for p in profiles]
    table = t.canonical_entities
    statement = (
        sa.update(table)
        .where(table.c.id == sa.bindparam("canonical_id"))
        .values({c: sa.bindparam(c) for c in rows[0] if c not in ("id", "canonical_id")})
    )
    connection.execute(statement, rows)


def split_partners(connection: sa.Connection, entity_ids: list[str]) -> dict[str, set[str]]:
    """For each entity, the entities a split said it must never share a canonical with."""
    splits = t.canonical_splits.c
    found = grouped(connection, splits.entity_id, splits.other_id, entity_ids)
    return {entity: {str(o) for o in others} for entity, others in found.items()}


def owners(connection: sa.Connection, entity_ids: list[str]) -> dict[str, str]:
    """The canonical holding each of the entities (those not merged yet are absent)."""
    members = t.canonical_members.c
    found = grouped(connection, members.entity_id, members.canonical_id, entity_ids)
    return {entity: str(held[0]) for entity, held in found.items()}


def insert_rows(
    connection: sa.Connection, table: sa.Table, rows: Sequence[Mapping[str, object]]
) -> None:
    """Insert the rows that do not exist yet, in slices."""
    for start in range(0, len(rows), 2000):
        connection.execute(insert(table).on_conflict_do_nothing(), rows[start : start + 2000])


def canonical_of(engine: sa.Engine) -> dict[str, str]:
    """Entity id → canonical id for every merged entity."""
    with engine.connect() as connection:
        query = sa.select(t.canonical_members.c.entity_id, t.canonical_members.c.canonical_id)
        return dict(connection.execute(query).all())
