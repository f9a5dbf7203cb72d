"""Name normalisation: one spelling per name, so resolution compares names, not typography."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from functools import lru_cache

from knowledge_assets.pipeline.resolution.surface import name_core

__all__ = [
    "ABBREVIATIONS",
    "CORPORATE_SUFFIXES",
    "HONORIFICS",
    "STOP_WORDS",
    "acronym_of",
    "acronym_variants",
    "name_tokens",
    "normalize_name",
    "numbers_in",
]

STOP_WORDS = frozenset(
    {"a", "an", "and", "at", "de", "del", "des", "du", "for", "in", "la", "le", "of", "on", "the"}
    | {"to"}
)
"""Function words that acronyms skip ("Bank of America" -> "ba")."""

HONORIFICS = frozenset({"mr", "mrs", "ms", "mx", "dr", "prof", "sen", "rep", "gov", "pres", "sir"})
"""Leading abbreviated titles. Full words ("President", "Lady", "St") stay: they are often part of
the name itself ("Lady Gaga", "St Louis"); person-only titles are stripped during resolution."""

CORPORATE_SUFFIXES = frozenset(
    {"inc", "corp", "co", "ltd", "llc", "plc", "gmbh", "ag", "sa", "nv"}
    | {"corporation", "company", "incorporated", "limited"}
)
"""Trailing legal-form words: "Apple Inc." and "Apple" name the same company."""

ABBREVIATIONS = {
    "mt": "mount",
    "mtn": "mountain",
    "ft": "fort",
    "dept": "department",
    "univ": "university",
    "intl": "international",
    "natl": "national",
    "assn": "association",
    "bros": "brothers",
}
"""Abbreviated words inside names, written out: "Mt Cook" is "Mount Cook", "Ft. Worth" "Fort
Worth". "St" stays as it is: it is "Saint" as often as "Street"."""

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'"})
_POSSESSIVE = re.compile(r"'s\b|(?<=s)'(?!\w)")
_DOTTED_ACRONYM = re.compile(r"\b\w\.(?:\s?\w\.)+")
"""Initials with periods, spaced or not: "U.N.", "U. S." (a lone initial, "W. Mark", is left)."""
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}\b)")
_NON_WORD = re.compile(r"[^\w\s]|_")
_IDENTIFIER = re.compile(
    r"(?<![A-Za-z0-9])(?:[A-Za-z]{1,3}-)?[A-Za-z]*\d[A-Za-z0-9]*(?:[.,/:]\d+)*"
)
_ROMAN_TOKEN = re.compile(r"\b[IVXLC]{2,}\b")
_ROMAN_VALID = re.compile(r"^(XC|XL|L?X{0,3})(IX|IV|V?I{0,3})$")
_ROMAN_VALUES = {"I": 1, "V": 5, "X": 10, "L": 50, "C": 100}


def _fold(text: str) -> str:
    """Case-fold and drop diacritics, so "Société" and "SOCIETE" compare equal."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def _strip_leading(tokens: list[str], words: frozenset[str]) -> list[str]:
    """Drop leading ``words`` but never the last token: "The" alone is still a name."""
    while len(tokens) > 1 and tokens[0] in words:
        tokens = tokens[1:]
    return tokens


def _strip_suffixes(tokens: list[str]) -> list[str]:
    """Drop trailing legal forms (and an "and" they leave dangling, as in "Smith & Co")."""
    while len(tokens) > 1 and tokens[-1] in CORPORATE_SUFFIXES:
        tokens = tokens[:-1]
        if len(tokens) > 1 and tokens[-1] == "and":
            tokens = tokens[:-1]
    return tokens


@lru_cache(maxsize=65536)
def normalize_name(text: str) -> str:
    """The comparison form of a name: folded, unpunctuated, without titles or legal forms.

    The name is first cut out of the span (``name_core``: "in Beverly Hills, California" ->
    "Beverly Hills"). Periods inside dotted acronyms vanish ("U.N." -> "un") while other
    punctuation becomes a space ("Coca-Cola" -> "coca cola"), so the spellings people actually
    alternate between meet.
    A name made only of strippable words keeps its last word rather than becoming empty.

    Args:
        text: A surface form as it appears in a document.

    Returns:
        Space-separated lower-case tokens; empty only when ``text`` has no letters or digits.
    """
    folded = _fold(name_core(text)).translate(_APOSTROPHES)
    folded = _POSSESSIVE.sub("", folded)
    folded = _DOTTED_ACRONYM.sub(lambda m: re.sub(r"[.\s]", "", m.group(0)), folded)
    folded = _THOUSANDS.sub("", folded.replace("'", "")).replace("&", " and ")
    tokens = [ABBREVIATIONS.get(t, t) for t in _NON_WORD.sub(" ", folded).split()]
    previous: list[str] = []
    while tokens != previous:
        previous = tokens
        tokens = _strip_leading(_strip_leading(tokens, frozenset({"the"})), HONORIFICS)
        tokens = _strip_suffixes(tokens)
    return " ".join(tokens)


def name_tokens(text: str) -> tuple[str, ...]:
    """The tokens of ``normalize_name(text)``."""
    return tuple(normalize_name(text).split())


def acronym_of(tokens: Sequence[str], *, keep_stop_words: bool = False) -> str:
    """Initials of a multi-word name, the form an acronym mention would take.

    Args:
        tokens: Normalised tokens, e.g. ``("international", "business", "machines")``.
        keep_stop_words: Also take initials of function words ("Department of Justice" ->
            "doj" rather than "dj"); "the" is skipped either way.

    Returns:
        The lower-case initials, e.g. ``"ibm"``; empty when fewer than two words qualify.
    """
    skip = frozenset({"the"}) if keep_stop_words else STOP_WORDS
    initials = [t[0] for t in tokens if t and t not in skip]
    return "".join(initials) if len(initials) >= 2 else ""


def acronym_variants(tokens: Sequence[str]) -> frozenset[str]:
    """Every acronym a multi-word name commonly takes.

    Initials without function words ("ibm"), with all but "the" ("doj" for "Department of
    Justice") and of every word ("thr" for "The Hollywood Reporter").
    """
    found = {acronym_of(tokens), acronym_of(tokens, keep_stop_words=True)}
    found.add("".join(t[0] for t in tokens if t) if len(tokens) >= 2 else "")
    return frozenset(found - {""})


def _roman_value(numeral: str) -> int:
    """Integer value of a validated Roman numeral."""
    total = 0
    for here, after in zip(numeral, [*numeral[1:], ""], strict=True):
        value = _ROMAN_VALUES[here]
        total += -value if after and _ROMAN_VALUES[after] > value else value
    return total


def _roman_numerals(text: str) -> set[str]:
    """Roman numerals written in capitals, as in "World War II" or "Super Bowl XLIII".

    Two-letter forms with L or C ("CC", "XL") are usually initials or sizes, and in all-caps text
    only I/V/X count, because there every word is capitalised.
    """
    all_caps = text.upper() == text
    found = set()
    for numeral in _ROMAN_TOKEN.findall(text):
        if not _ROMAN_VALID.match(numeral):
            continue
        if ("L" in numeral or "C" in numeral) and (all_caps or len(numeral) < 3):
            continue
        found.add(str(_roman_value(numeral)))
    return found


@lru_cache(maxsize=65536)
def numbers_in(text: str) -> frozenset[str]:
    """Numbers and identifiers in a name: what tells "Flight 101" from "Flight 102".

    Digits count with the letters glued to them ("A320", "3G"); a short letter prefix joined by a
    hyphen is kept ("F-16" == "F16"); separators inside numbers go ("9/11" -> "911", "1,000" ->
    "1000"); capitalised Roman numerals become digits ("Henry VIII" -> "8").

    Args:
        text: A surface form as it appears in a document.

    Returns:
        Lower-case identifiers without punctuation.
    """
    core = name_core(text)
    plain = "".join(c for c in unicodedata.normalize("NFKD", core) if not unicodedata.combining(c))
    found = {re.sub(r"[^0-9a-z]", "", m.lower()) for m in _IDENTIFIER.findall(plain)}
    return frozenset(found | _roman_numerals(plain))
