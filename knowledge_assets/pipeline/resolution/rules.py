"""When two name nodes may denote one entity: hard guards first, then the evidence cascade."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from enum import IntEnum
from itertools import combinations
from typing import NamedTuple

from rapidfuzz import fuzz

from knowledge_assets.pipeline.resolution.ablation import ALL_ON, Rule
from knowledge_assets.pipeline.resolution.adjudication import (
    UNCERTAIN_BAND,
    Adjudicator,
    NoAdjudicator,
)
from knowledge_assets.pipeline.resolution.context import SharedContext
from knowledge_assets.pipeline.resolution.labels import LabelRules
from knowledge_assets.pipeline.resolution.nodes import NameNode, PersonParts
from knowledge_assets.pipeline.resolution.normalize import acronym_variants
from knowledge_assets.pipeline.resolution.parts import PartIndex
from knowledge_assets.pipeline.resolution.variants import (
    SOUND_MIN_LENGTH,
    given_names_match,
    same_word,
    sounds_alike,
)

__all__ = ["Link", "PairRules", "Tier", "conflict", "similarity"]


MIN_TAGS = 2
"""Mentions that must carry an outvoted tag before it counts as evidence of the name's type."""


class Tier(IntEnum):
    """Kinds of evidence, strongest first: merges are applied in this order."""

    DOCUMENT = 0
    EXACT = 1
    ACRONYM = 2
    PERSON = 3
    PART = 4
    FUZZY = 5
    SOUND = 6
    ADJUDICATED = 7


class Link(NamedTuple):
    """Evidence that two nodes corefer: its tier and a 0-1 strength within the tier."""

    tier: Tier
    score: float


def similarity(a: str, b: str) -> float:
    """Order-insensitive edit similarity of two normalised names, 0-1 (rapidfuzz token sort)."""
    return fuzz.token_sort_ratio(a, b) / 100.0


def _names_compatible(x: str, y: str) -> bool:
    """Same first (or middle) name or a variant of it (``variants.given_names_match``)."""
    return given_names_match(x, y)


def _tokens_align(a: Sequence[str], b: Sequence[str]) -> bool:
    """Every word of the shorter name appears in the longer one, at most misspelt.

    Whole-string similarity alone merges "Northern District" with "Southern District"; demanding
    a counterpart per word keeps such names apart while allowing "Promises Treatment Centre".
    """
    short, long = sorted((a, b), key=len)
    return all(any(same_word(t, u) for u in long) for t in short)


def _spelt_alike(a: Sequence[str], b: Sequence[str]) -> bool:
    """Word for word the same or sound-alike spellings, at least one of them differing."""
    if len(a) != len(b) or a == b:
        return False
    return all(x == y or sounds_alike(x, y) for x, y in zip(a, b, strict=True))


class PairRules:
    """The pairwise rules of one batch (surname ambiguity depends on the batch's other names)."""

    def __init__(
        self,
        nodes: Sequence[NameNode],
        labels: LabelRules,
        threshold: float,
        pairs: Sequence[tuple[int, int]] = (),
        adjudicator: Adjudicator | None = None,
        context: SharedContext | None = None,
        without: frozenset[Rule] = ALL_ON,
    ) -> None:
        self._labels = labels
        self._context = context
        self._without = without
        self._adjudicator = adjudicator or NoAdjudicator()
        self._threshold = threshold
        self._ambiguous = _ambiguous_surnames(nodes)
        self._parts = PartIndex(nodes, [p for p in pairs if not self._conflict_at(nodes, p)])

    def conflict(self, a: NameNode, b: NameNode) -> bool:
        """Hard guards: such a pair is never merged, whatever else links it (``conflict``)."""
        return conflict(
            self._labels,
            a,
            b,
            stray_tags=not self._on(Rule.STRAY_TAGS),
            full_names=self._on(Rule.FULL_NAMES),
        )

    def may_share(self, a: NameNode, b: NameNode) -> bool:
        """Whether two names with no link between them may still sit in one cluster.

        Complete linkage asks this of every cross pair of a merge. Requiring a direct link
        would keep "New Orleans" (the team) from "Saints" although both are "New Orleans
        Saints"; allowing any pair without a guard would chain near misses ("Treatment Center",
        "Centre", "Centres"). So: no guard fires, and one name is one word or has no word the
        other lacks. A name its document tied to a longer name stands for that name, whose own
        pairs are checked: a bare "Lohan" tagged a place in one document and a person in
        another, both tied to "Lindsay Lohan", may share her cluster.
        """
        if a.anchor or b.anchor:
            return True
        if self.conflict(a, b):
            return False
        x, y = set(a.tokens), set(b.tokens)
        return len(x) == 1 or len(y) == 1 or x <= y or y <= x

    def _conflict_at(self, nodes: Sequence[NameNode], pair: tuple[int, int]) -> bool:
        return self.conflict(nodes[pair[0]], nodes[pair[1]])

    def link(self, a: NameNode, b: NameNode) -> Link | None:
        """The strongest evidence that ``a`` and ``b`` corefer, or None when nothing links them.

        A partial name its own documents settled (``anchors``) is linked by them alone: the same
        surname elsewhere may be a namesake. Other names may still link to one tied to a longer
        name, which stands for that name's cluster.
        """
        if _settled_pair(a, b) or self.conflict(a, b):
            return None
        if a.key == b.key:
            return Link(Tier.EXACT, 1.0)
        if self._on(Rule.ACRONYM) and (_acronym_match(a, b) or _acronym_match(b, a)):
            return Link(Tier.ACRONYM, 1.0)
        if self._on(Rule.PERSON) and self._person_match(a, b):
            return Link(Tier.PERSON, 1.0)
        if self._on(Rule.PART) and self._parts.supports(a, b) and self._part_in_context(a, b):
            return Link(Tier.PART, 1.0)
        return self._fuzzy(a, b)

    def _on(self, rule: Rule) -> bool:
        return rule not in self._without

    def _fuzzy(self, a: NameNode, b: NameNode) -> Link | None:
        """Close spellings; the band just below the threshold goes to the adjudicator."""
        score = similarity(a.key, b.key)
        aligned = _tokens_align(a.tokens, b.tokens)
        if score >= self._threshold and aligned and self._on(Rule.FUZZY):
            return Link(Tier.FUZZY, score)
        if self._on(Rule.SOUND) and _spelt_alike(a.tokens, b.tokens):
            return Link(Tier.SOUND, score)
        if score < self._threshold - UNCERTAIN_BAND or not aligned:
            return None
        verdict = self._adjudicator.same(a.key, b.key, label=a.label, score=score)
        return Link(Tier.ADJUDICATED, score) if verdict else None

    def _part_in_context(self, a: NameNode, b: NameNode) -> bool:
        """Whether a part of a name may join a longer name that none of its documents uses.

        The head of a name (its last word: "Reid", "Chiefs") and a start of several words
        ("Staunton Police") stand for the longer name wherever the batch has no rival for it.
        A one-word start is often a name in its own right ("France" of "France Telecom",
        "Internet" of "Internet Explorer"), so it joins only where the documents share a story
        (``context``). Without documents to compare (the registry) it joins nothing.
        """
        if _same_head(a, b) or min(len(a.tokens), len(b.tokens)) > 1:
            return True
        if not self._on(Rule.CONTEXT):
            return True
        return self._context is not None and self._context.shared(a, b)

    def _person_match(self, a: NameNode, b: NameNode) -> bool:
        """A bare surname and its one full name, or two full names with the same surname."""
        if not (a.person and b.person):
            return False
        if not a.surname or not b.surname:
            full, bare = (a, b) if a.surname else (b, a)
            return (
                bool(full.surname) and bare.key == full.surname and bare.key not in self._ambiguous
            )
        if a.surname != b.surname:
            return False
        return a.given == b.given or a.surname not in self._ambiguous


def conflict(
    labels: LabelRules,
    a: NameNode,
    b: NameNode,
    *,
    stray_tags: bool = False,
    full_names: bool = True,
) -> bool:
    """Hard guards: such a pair is never merged, whatever else links it.

    Different numbers ("Flight 101"/"Flight 102") and different full names with one head
    ("Alice"/"Bruno Hartmann") never merge. Incompatible types keep names apart ("Apple" the
    company, "apple" the fruit), except where our tagger is known to err and the name says
    more than the tag: one and the same name of several words ("Bettie Page" once a person,
    once an organisation), and a person's full name with its bare surname ("Hugh Jackman",
    "Jackman" tagged a place). A tag the consensus outvoted still counts as evidence of type
    (``_tags_meet``). Opaque labels (given by the user) always hold. ``stray_tags`` lets any
    single tag count (``Rule.STRAY_TAGS`` off), ``full_names`` False drops the full-name guard
    (``Rule.FULL_NAMES`` off).
    """
    if _numbers_clash(a, b) or (full_names and _different_full_names(a, b)):
        return True
    if not labels.compatible(a.label, b.label) and not _tags_meet(labels, a, b, stray_tags):
        return not (_tagged(labels, a, b) and (_same_long_name(a, b) or _surname_of(a, b)))
    return _person_conflict(a, b)


def _different_full_names(a: NameNode, b: NameNode) -> bool:
    """Two names of as many words with one head, whose other words name different things.

    "Alice Hartmann" and "Bruno Hartmann", "Anna Hartmann" and "Hanna Hartmann", "Northern
    District" and "Southern District": the short forms match exactly, the names do not. Words
    that may be one name ("Bettie"/"Betty", "Bill"/"William", "J"/"John") do not count. It
    holds whatever the labels, so names under opaque labels get it too; person names also get
    the finer ``_person_conflict`` (middle names, particles).
    """
    x, y = a.tokens, b.tokens
    if len(x) != len(y) or len(x) < 2 or x[-1] != y[-1] or a.key == b.key:
        return False
    return any(not _one_word(p, q) for p, q in zip(x[:-1], y[:-1], strict=True))


def _one_word(x: str, y: str) -> bool:
    """Two spellings of one word of a name.

    A first-name variant, or a longer word misspelt or inflected ("Picture"/"Pictures"); short
    words one letter apart ("Anna"/"Hanna") are different names.
    """
    if given_names_match(x, y):
        return True
    return min(len(x), len(y)) >= SOUND_MIN_LENGTH and same_word(x, y)


def _tags_meet(labels: LabelRules, a: NameNode, b: NameNode, stray_tags: bool) -> bool:
    """Some tag the extractor gave one name's mentions fits some tag of the other's.

    Between a name and the head of another ("Jaguars", mostly tagged a person, once an
    organisation, and "Jacksonville Jaguars") any tag counts. Otherwise a tag counts when it is
    the name's label or at least ``MIN_TAGS`` of its mentions carry it: organisations are named
    after people ("Meyer Freight"), and one stray tag on the founder's "Meyer" must not drag a
    person into the company.
    """
    if not _tagged(labels, a, b):
        return False
    least = 1 if stray_tags or _same_head(a, b) else MIN_TAGS
    x, y = _tags(a, least), _tags(b, least)
    return any(labels.compatible(p, q) for p in x for q in y)


def _tags(node: NameNode, least: int) -> set[str]:
    """The node's label and the tags at least ``least`` of its mentions carry."""
    return {node.label} | {tag for tag, n in node.tags.items() if n >= least}


def _tagged(labels: LabelRules, a: NameNode, b: NameNode) -> bool:
    return labels.known(a.label) and labels.known(b.label)


def _settled_pair(a: NameNode, b: NameNode) -> bool:
    """Both names settled by their documents, or one confined to its document."""
    return bool(a.document or b.document or (a.anchor and b.anchor))


def _same_head(a: NameNode, b: NameNode) -> bool:
    """Both names end in the same word, the head of an English name ("Reid", "Tara Reid")."""
    return bool(a.tokens and b.tokens) and a.tokens[-1] == b.tokens[-1]


def _same_long_name(a: NameNode, b: NameNode) -> bool:
    return a.key == b.key and len(a.tokens) > 1


def _surname_of(a: NameNode, b: NameNode) -> bool:
    """One is a one-word name, the other a person's full name ending in it."""
    bare, full = (a, b) if len(a.tokens) < len(b.tokens) else (b, a)
    return len(bare.tokens) == 1 and bool(full.surname) and full.surname == bare.key


def _digits(numbers: frozenset[str]) -> frozenset[str]:
    return frozenset("".join(c for c in n if c.isdigit()) for n in numbers)


def _numbers_clash(a: NameNode, b: NameNode) -> bool:
    """Different numbers or identifiers ("Flight 101"/"Flight 102", "Windows 7"/"Windows 8").

    An acronym glues its number to its letters ("IE8" for "Internet Explorer 8"), so against
    an acronym only the digits are compared.
    """
    if a.numbers == b.numbers:
        return False
    if a.acronym_like or b.acronym_like:
        return _digits(a.numbers) != _digits(b.numbers)
    return True


def _acronym_match(short: NameNode, long: NameNode) -> bool:
    """``short`` is written in capitals and spells the initials of ``long``."""
    if not short.acronym_like or len(long.tokens) < 2:
        return False
    return short.key in acronym_variants(long.tokens)


def _person_conflict(a: NameNode | PersonParts, b: NameNode | PersonParts) -> bool:
    """Two full names of one surname whose first or middle names differ ("John"/"Jane" Smith)."""
    if not (a.surname and b.surname and a.surname == b.surname):
        return False
    if not _names_compatible(a.given, b.given):
        return True
    if not (a.middle and b.middle):
        return False
    return not _names_compatible(a.middle[0], b.middle[0])


def _ambiguous_surnames(nodes: Sequence[NameNode]) -> frozenset[str]:
    """Surnames shared by full names that cannot be one person ("John Smith", "Jane Smith")."""
    by_surname: dict[str, set[PersonParts]] = defaultdict(set)
    for node in nodes:
        if node.surname:
            by_surname[node.surname].add(node.parts)
    return frozenset(
        surname
        for surname, full in by_surname.items()
        if any(_person_conflict(x, y) for x, y in combinations(full, 2))
    )
