"""A name and the one longer name of the batch that contains it: "Reid" and "Tara Reid".

News text names something in full once and then by part of its name: the last word ("Reid",
"Herald", "Camry"), the first words ("Cliffside" for "Cliffside Rehab Center", "Kansas City" for
"Kansas City Chiefs"), or the full name without a middle name ("Raj Chohan", "Raj K. Chohan").
A part is first read in its own document (``anchors``); a part whose document names nothing
longer is trusted only when it points at one longer name in the whole batch ("Barack Obama" and
"Michelle Obama" in one batch leave such a bare "Obama" alone).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from knowledge_assets.pipeline.resolution.nodes import NameNode
from knowledge_assets.pipeline.resolution.normalize import STOP_WORDS
from knowledge_assets.pipeline.resolution.variants import given_names_match, same_word

__all__ = ["PartIndex", "nested", "part_of"]

DISTINCT_PREFIXES = frozenset(
    {"north", "south", "east", "west", "northern", "southern", "eastern", "western", "new"}
    | {"upper", "lower", "central", "greater", "great", "little", "old", "saint", "st", "san"}
)
"""First words that make another place of a one-word rest: "South Africa" is not "Africa"."""

MAX_LONG_NAME = 5
"""Longer "names" are lists or headlines ("South East Asia-Middle East-Western Europe"); a part
of one is not a short form of anything."""


def _initial_of(short: str, long: str) -> bool:
    """Same word, its initial ("c", "cheney") or a variant of it ("fred", "frederick")."""
    return (
        short == long
        or (len(short) == 1 and long.startswith(short))
        or (len(long) > 1 and given_names_match(short, long))
    )


def _subsequence(short: Sequence[str], long: Sequence[str]) -> bool:
    """``short`` matches ``long`` in order, word for word or initial for word."""
    position = 0
    for token in short:
        while position < len(long) and not _initial_of(token, long[position]):
            position += 1
        if position == len(long):
            return False
        position += 1
    return True


def part_of(short: NameNode, long: NameNode) -> bool:
    """``short`` is the end, the start, or the first and last words of ``long``.

    A end must follow no function word ("Aden" is not "Gulf of Aden") nor a distinct prefix; a
    start must not stop before a function word ("Bank" is not "Bank of America").
    """
    s, t = short.tokens, long.tokens
    if not s or len(s) > len(t) or len(t) > MAX_LONG_NAME or short.acronym_like or s == t:
        return False
    if len(s) == len(t):
        return len(s) >= 2 and s[-1] == t[-1] and _subsequence(s, t)
    if t[-len(s) :] == s:
        rest = t[: -len(s)]
        return rest[-1] not in STOP_WORDS and not (len(rest) == 1 and rest[0] in DISTINCT_PREFIXES)
    if t[: len(s)] == s:
        return t[len(s)] not in STOP_WORDS and t[-1] not in STOP_WORDS
    return len(s) >= 2 and _initial_of(s[0], t[0]) and s[-1] == t[-1] and _subsequence(s, t)


def nested(x: NameNode, y: NameNode) -> bool:
    """Two longer names that could be one name, so neither is the other's rival.

    The same words, at most misspelt or inflected ("Indianapolis Colt", "Indianapolis Colts"),
    or one a part of the other ("Tara Reid", "actress Tara Reid").
    """
    return _same_words(x.tokens, y.tokens) or part_of(x, y) or part_of(y, x)


def _same_words(a: Sequence[str], b: Sequence[str]) -> bool:
    return len(a) == len(b) and all(same_word(x, y) for x, y in zip(a, b, strict=True))


class PartIndex:
    """Which longer names each unanchored name is part of, so ambiguity is judged once per batch.

    A name its own documents settled (``anchors``) is no part here; one tied to a longer name
    may still be the longer name of another part ("Katie" of "Katie Jenkin", which a document
    tied to "Kathryn Jenkin").
    """

    def __init__(self, nodes: Sequence[NameNode], pairs: Sequence[tuple[int, int]]) -> None:
        self._longer: dict[int, set[int]] = defaultdict(set)
        for i, j in pairs:
            for short, long in ((nodes[i], nodes[j]), (nodes[j], nodes[i])):
                if not short.settled and not long.document and part_of(short, long):
                    self._longer[short.index].add(long.index)
        self._nodes = nodes

    def supports(self, a: NameNode, b: NameNode) -> bool:
        """``a`` is part of ``b`` (or the reverse) and points at nothing else that rivals it."""
        return self._supports(a, b) or self._supports(b, a)

    def _supports(self, short: NameNode, long: NameNode) -> bool:
        longer = self._longer.get(short.index, set())
        if long.index not in longer:
            return False
        return all(nested(self._nodes[i], long) for i in longer)
