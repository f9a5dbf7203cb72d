"""The name inside a mention's surface text, without the words a span drags along with it.

Annotators and extractors both return spans such as "in Beverly Hills, California", "the notorious
Gulf of Aden", "Eric Allen Kirkpatrick, 61" or "Evansville 91-73": the name is "Beverly Hills",
"Gulf of Aden", "Eric Allen Kirkpatrick", "Evansville". Comparing the cores instead of the spans
lets one name meet its other spellings without any fuzzy matching, and keeps an age or a score
from looking like an identifier.
"""

from __future__ import annotations

import re
from functools import lru_cache

__all__ = ["name_core"]

_APPOSITIVE = re.compile(r",\s+(?=[A-Z0-9])|\s+[-\u2013\u2014]+\s+")
"""A comma before a capitalised word or a number ("Wasilla, Alaska", "Kirkpatrick, 61"), or a
spaced dash between two names ("Turkmenistan - Ashgabat")."""

_POST_MODIFIER = re.compile(r"\s+(?:in|at|on|near|off|outside|between|from)\s+(?=\S)")
"""A place or time phrase after the name: "Stiles Unit in Beaumont", "Gulf of Aden between ..."."""

_PARENTHESIS = re.compile(r"\s*\(")
"""An aside or an unclosed bracket: "Internet Explorer 8 (IE8"."""

_LEADING_PREPOSITION = re.compile(r"^(?:in|at|on|into|to|from|near|off|of|for|by)\s+", re.I)
"""A preposition the span starts with, capitalised at a sentence start or in a headline."""

_QUOTED_NICKNAME = re.compile(r"\s+[\"'\u2018\u201c]+[^\"'\u2019\u201d]+[\"'\u2019\u201d]+\s+")
"""A nickname in quotes inside a name: Vincent "The Chin" Gigante is Vincent Gigante."""

_WEB_SUFFIX = re.compile(r"\s*\.\s*(?:com|org|net)\b.*$", re.I)
"""A site's domain ending: "People.com" and "TMZ. com" are People and TMZ."""

_SCORE = re.compile(r"\s+(?:\d{1,2}\s*[-\u2013]\s*\d{1,3}|\d{3}\s*[-\u2013]\s*\d{1,2})$")
"""A game's score after a team ("Evansville 91-73"); two three-digit numbers stay, they are a
model ("Boeing 747-400")."""

_CAPITALISED = re.compile(r"^[^\w]*[A-Z0-9]")

_ADDRESS = re.compile(r"://|^www\.|\.html?\b")


def _is_name_word(token: str) -> bool:
    """A token that can belong to a name: capitalised, a number, or mixed case ("iPhone")."""
    return bool(_CAPITALISED.match(token)) or any(c.isupper() for c in token)


def _trim_lowercase(tokens: list[str]) -> list[str]:
    """Drop leading and trailing all-lower-case words when a name word remains between them.

    Leading ones are prepositions, articles and modifiers ("in", "the notorious", "east");
    trailing ones are common nouns ("Qeshm island"). A name written wholly in lower case
    ("apple") has no name word and is kept as it is.
    """
    named = [i for i, token in enumerate(tokens) if _is_name_word(token)]
    if not named:
        return tokens
    return tokens[named[0] : named[-1] + 1]


def _one_line(text: str) -> str:
    """The first line of a span that runs over a line break, skipping web addresses.

    Extractors sometimes join a headline, a dateline or a source URL to the name next to it
    (a URL line, then "Indian Navy"; "Gulf of Eden", then a dateline).
    """
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    names = [line for line in lines if not _ADDRESS.search(line)]
    return (names or lines or [text.strip()])[0]


@lru_cache(maxsize=65536)
def name_core(text: str) -> str:
    """The name a mention's text contains, without appositives, post-modifiers, lower-case words.

    Each cut is taken only when a name word stays before it, and a leading preposition goes in
    any case ("IN MILLOM"), so a span is never emptied: "in" alone stays "in".

    Args:
        text: A mention's surface text.

    Returns:
        The core, a substring of ``text`` up to inner whitespace; ``text`` stripped when no cut
        applies.
    """
    core = _one_line(text)
    for pattern in (_APPOSITIVE, _PARENTHESIS, _POST_MODIFIER, _WEB_SUFFIX, _SCORE):
        head = pattern.split(core, maxsplit=1)[0]
        if any(_is_name_word(t) for t in head.split()):
            core = head
    core = _QUOTED_NICKNAME.sub(" ", core)
    trimmed = _trim_lowercase(_LEADING_PREPOSITION.sub("", core).split()) or core.split()
    return " ".join(trimmed) if trimmed else core
