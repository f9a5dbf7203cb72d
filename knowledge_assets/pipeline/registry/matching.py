"""Which canonical entity, if any, a batch entity is: the in-batch rules, applied to names.

The same guards and evidence tiers as in-batch resolution decide, so a pair the pipeline keeps
apart inside a batch is kept apart across batches too. Two things differ: there is no shared
document across batches, so a part of a name ("Reid") never joins a full name here; and a
pair must be the one best match, or the entity starts a canonical of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import product

from knowledge_assets.pipeline.registry.profiles import Profile, full_aliases
from knowledge_assets.pipeline.resolution.ablation import ALL_ON, Rule
from knowledge_assets.pipeline.resolution.adjudication import Adjudicator
from knowledge_assets.pipeline.resolution.labels import LabelRules
from knowledge_assets.pipeline.resolution.nodes import NameNode, build_nodes, surface_mention
from knowledge_assets.pipeline.resolution.rules import Link, PairRules, Tier

__all__ = ["MAX_MEMBERS", "Match", "Matcher"]

MAX_MEMBERS = 200
"""No canonical grows past this many batch entities: a runaway canonical is a chain of near
misses, and every member makes later comparisons slower."""


@dataclass(frozen=True)
class Match:
    """The canonical an entity joins, the rule and score that decided it, and why."""

    canonical_id: str
    rule: str
    score: float
    evidence: dict[str, object] = field(default_factory=dict)


class Matcher:
    """Compares batch entities with candidate canonicals; caches each side's name nodes."""

    def __init__(
        self,
        labels: LabelRules,
        threshold: float = 0.9,
        adjudicator: Adjudicator | None = None,
        without: frozenset[Rule] = ALL_ON,
    ) -> None:
        self._labels = labels
        self._threshold = threshold
        self._adjudicator = adjudicator
        self.without = without
        self._nodes: dict[tuple[str, str], list[NameNode]] = {}

    @property
    def labels(self) -> LabelRules:
        """The ontology questions this matcher asks."""
        return self._labels

    def best(self, entity: Profile, candidates: Sequence[Profile]) -> Match | None:
        """The one strongest match among ``candidates``, or None (none, or a tie)."""
        found: list[tuple[Link, Profile, tuple[str, str]]] = []
        ours = self._side("e", entity)
        for candidate in candidates:
            if candidate.members >= MAX_MEMBERS:
                continue
            linked = self._link(ours, candidate)
            if linked is not None:
                found.append((linked[0], candidate, linked[1]))
        if not found:
            return None
        found.sort(key=lambda f: (f[0].tier, -f[0].score, -f[1].mentions, f[1].id))
        link, canonical, names = found[0]
        tied = len(found) > 1 and found[1][0] == link
        if tied and link.tier != Tier.EXACT:
            return None
        evidence: dict[str, object] = {
            "entity_name": names[0],
            "canonical_name": names[1],
            "rule": link.tier.name,
        }
        return Match(canonical.id, link.tier.name.lower(), round(link.score, 4), evidence)

    def invalidate(self, canonical_id: str) -> None:
        """Forget a canonical's cached names after it gained aliases."""
        self._nodes.pop(("c", canonical_id), None)

    def _link(
        self, ours: list[NameNode], canonical: Profile
    ) -> tuple[Link, tuple[str, str]] | None:
        theirs = self._side("c", canonical)
        rules = PairRules(
            [*ours, *theirs],
            self._labels,
            self._threshold,
            (),
            self._adjudicator,
            None,
            self.without,
        )
        if any(rules.conflict(ours[0], n) for n in theirs) or any(
            rules.conflict(n, theirs[0]) for n in ours
        ):
            return None
        links = [
            (link, (a.mentions[0].text, b.mentions[0].text))
            for a, b in product(ours, theirs)
            if (link := rules.link(a, b)) is not None
        ]
        return min(links, key=lambda found: (found[0].tier, -found[0].score), default=None)

    def _side(self, side: str, profile: Profile) -> list[NameNode]:
        """Name nodes of a profile, its own name first."""
        cached = self._nodes.get((side, profile.id))
        if cached is None:
            names = [profile.name, *(a for a in full_aliases(profile.name, profile.aliases))]
            source = f"{side}:{profile.id}"
            mentions = [surface_mention(n, profile.label, source) for n in dict.fromkeys(names)]
            nodes = build_nodes(mentions, self._labels)
            first = next(n for n in nodes if any(m.text == profile.name for m in n.mentions))
            cached = [first, *(n for n in nodes if n is not first)]
            if side == "c":
                self._nodes[(side, profile.id)] = cached
        return cached
