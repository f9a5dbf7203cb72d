"""Variant forms of one word in a name: initials, short forms, nicknames, spellings."""

from __future__ import annotations

from functools import cache

from jellyfish import metaphone
from nicknames import NickNamer
from rapidfuzz import fuzz

__all__ = ["TOKEN_MATCH", "given_names_match", "same_word", "sounds_alike"]

TOKEN_MATCH = 0.8
"""Least similarity at which two differing words count as one word misspelt ("centre"/"center",
"colt"/"colts"); "northern"/"southern" (0.75) stay different words."""

SHORT_FORM = 3
"""A word this long that starts a word at least two letters longer is its short form ("Fred",
"Frederick"); one letter more is usually another name ("Jan", "Jane")."""

SOUND_MIN_LENGTH = 5
"""Shortest word whose sound-alike spellings count as one word ("Jan"/"Jane" do not)."""

SOUND_MATCH = 0.7
"""Least letter similarity of two sound-alike spellings ("bettie"/"betty" is 0.73)."""


def same_word(x: str, y: str) -> bool:
    """One word, or one word misspelt or inflected ("centre"/"center", "colt"/"colts")."""
    return x == y or fuzz.ratio(x, y) / 100.0 >= TOKEN_MATCH


def sounds_alike(x: str, y: str) -> bool:
    """Two spellings of one word: same sound, same first letter, close letters.

    "Bettie"/"Betty", "Turkmenistan"/"Turkeminstan"; short words are left out.
    """
    if x == y:
        return True
    if min(len(x), len(y)) < SOUND_MIN_LENGTH or x[0] != y[0]:
        return False
    return fuzz.ratio(x, y) / 100.0 >= SOUND_MATCH and metaphone(x) == metaphone(y)


def given_names_match(x: str, y: str) -> bool:
    """Whether two first (or middle) names can be one person's.

    The same name, an initial ("J"/"John"), a short form ("Fred"/"Frederick"), a nickname from
    a hand-curated list ("Bill"/"William", "Katie"/"Kathryn") or another spelling.
    """
    short, long = sorted((x, y), key=len)
    if short == long or len(short) == 1:
        return long.startswith(short)
    if len(short) >= SHORT_FORM and len(long) >= len(short) + 2 and long.startswith(short):
        return True
    return short in _nicknames(long) or long in _nicknames(short) or sounds_alike(short, long)


@cache
def _namer() -> NickNamer:
    return NickNamer()


@cache
def _nicknames(name: str) -> frozenset[str]:
    """Nicknames of a name and the names it is a nickname of."""
    return frozenset(_namer().nicknames_of(name) | _namer().canonicals_of(name))
