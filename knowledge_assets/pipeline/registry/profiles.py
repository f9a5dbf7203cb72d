"""What the registry knows about a name: a batch entity or a canonical entity, read in bulk."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from knowledge_assets.db import tables as t
from knowledge_assets.pipeline.registry.keys import is_acronym, lookup_keys, name_keys
from knowledge_assets.pipeline.resolution.labels import LabelRules
from knowledge_assets.pipeline.resolution.normalize import name_tokens, normalize_name

__all__ = ["Profile", "batch_profiles", "canonical_profiles", "full_aliases", "grouped"]

CHUNK = 5000
"""Ids per ``IN (...)`` query, so a huge batch never builds one enormous statement."""

MAX_ALIASES = 50
"""Aliases kept on a canonical row: enough to match on, small enough to read per candidate."""


@dataclass
class Profile:
    """A named thing to compare: its name, types (primary first), aliases and mention count."""

    id: str
    name: str
    types: tuple[str, ...]
    aliases: tuple[str, ...]
    mentions: int
    members: int = 1

    @property
    def label(self) -> str:
        """The primary (most specific) type."""
        return self.types[0] if self.types else "Thing"

    def keys(self, labels: LabelRules) -> frozenset[str]:
        """Blocking keys of the name and of every alias that names the whole entity."""
        return self._keys(labels, name_keys)

    def lookup_keys(self, labels: LabelRules) -> frozenset[str]:
        """The keys to find this entity's possible canonicals under (``keys.lookup_keys``)."""
        return self._keys(labels, lookup_keys)

    def _keys(self, labels: LabelRules, of: Callable[[str, str], frozenset[str]]) -> frozenset[str]:
        root = labels.root(self.label)
        names = {self.name, *full_aliases(self.name, self.aliases)}
        return frozenset(k for name in sorted(names) for k in of(root, name))


def full_aliases(name: str, aliases: Iterable[str]) -> list[str]:
    """Aliases that name the whole entity, not a part of it.

    A bare "Bush" stays an alias of "Reggie Bush" but matches nothing across batches: in
    another batch it may be another Bush, and no document there says otherwise. A word in
    capitals counts as an acronym only if it is not also written in lower case or part of the
    name ("WILLIAMS" in a headline is the surname of "Jamal Williams", not an acronym).
    """
    one_word = len(normalize_name(name).split()) == 1
    spelled = {normalize_name(a) for a in aliases if not is_acronym(a)} | set(name_tokens(name))
    return sorted(
        alias
        for alias in set(aliases)
        if len(normalize_name(alias).split()) >= 2
        or one_word
        or (is_acronym(alias) and normalize_name(alias) not in spelled)
    )


def grouped(
    connection: sa.Connection, column: sa.Column, value: sa.ColumnElement, ids: Sequence[str]
) -> dict[str, list[object]]:
    """``value`` of the rows whose ``column`` is in ``ids``, grouped by ``column``."""
    found: dict[str, list[object]] = defaultdict(list)
    for start in range(0, len(ids), CHUNK):
        query = sa.select(column, value).where(column.in_(ids[start : start + CHUNK]))
        for key, item in connection.execute(query):
            found[key].append(item)
    return found


def batch_profiles(connection: sa.Connection, batch_id: str, labels: LabelRules) -> list[Profile]:
    """The batch's entities that no canonical holds yet, sorted by id."""
    counts: dict[str, int] = dict(
        connection.execute(
            sa.select(t.mentions.c.entity_id, sa.func.count())
            .where(t.mentions.c.batch_id == batch_id)
            .group_by(t.mentions.c.entity_id)
        ).all()
    )
    held = grouped(
        connection,
        t.canonical_members.c.entity_id,
        t.canonical_members.c.canonical_id,
        list(counts),
    )
    return entity_profiles(connection, sorted(set(counts) - set(held)), labels, counts)


def entity_profiles(
    connection: sa.Connection,
    ids: Sequence[str],
    labels: LabelRules,
    counts: dict[str, int] | None = None,
) -> list[Profile]:
    """Profiles of the given batch entities, in the order of ``ids``."""
    names = grouped(connection, t.entities.c.id, t.entities.c.canonical_name, ids)
    types = grouped(connection, t.entity_types.c.entity_id, t.entity_types.c.type, ids)
    aliases = grouped(connection, t.entity_aliases.c.entity_id, t.entity_aliases.c.alias, ids)
    if counts is None:
        counts = {
            k: len(v)
            for k, v in grouped(connection, t.mentions.c.entity_id, t.mentions.c.id, ids).items()
        }
    return [
        Profile(
            id=entity_id,
            name=str(names[entity_id][0]),
            types=labels.most_specific_first(str(x) for x in types.get(entity_id, ["Thing"])),
            aliases=tuple(sorted(str(a) for a in aliases.get(entity_id, []))),
            mentions=counts.get(entity_id, 0),
        )
        for entity_id in ids
        if entity_id in names
    ]


def canonical_profiles(connection: sa.Connection, ids: Iterable[str]) -> dict[str, Profile]:
    """Profiles of the given canonical entities."""
    c = t.canonical_entities.c
    wanted = sorted(set(ids))
    found: dict[str, Profile] = {}
    for start in range(0, len(wanted), CHUNK):
        query = sa.select(c.id, c.name, c.types, c.aliases, c.mention_count, c.members).where(
            c.id.in_(wanted[start : start + CHUNK])
        )
        for row in connection.execute(query):
            found[row.id] = Profile(
                id=row.id,
                name=row.name,
                types=tuple(row.types),
                aliases=tuple(row.aliases),
                mentions=row.mention_count,
                members=row.members,
            )
    return found
