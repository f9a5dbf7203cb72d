"""The pathological document of issue 16: one text of 50,000 different names (2.8 MB).

A crowd of names, each written once in a short sentence: every name becomes a mention and almost
every one its own entity (53,149 entities from 50,000 names when reported), so any pass over
pairs of names, or over every mention for every other one, shows at once.
"""

from __future__ import annotations

import random

_ONSETS = ["b", "c", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br"]
_VOWELS = ["a", "e", "i", "o", "u", "ai", "ou"]
_ENDINGS = ["", "n", "s", "r", "l", "t"]


def _word(rng: random.Random) -> str:
    syllables = rng.randint(2, 3)
    core = "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(syllables))
    return (core + rng.choice(_ENDINGS)).title()


def crowd_names(count: int, seed: int = 16) -> list[str]:
    """``count`` different two-word person names, deterministic for a seed."""
    rng = random.Random(seed)
    found: dict[str, None] = {}
    firsts = [_word(rng) for _ in range(max(50, count // 100))]
    while len(found) < count:
        found.setdefault(f"{rng.choice(firsts)} {_word(rng)}", None)
    return list(found)


def crowd_document(count: int = 50_000) -> str:
    """A text naming ``count`` different people, one short sentence each (2.8 MB at 50,000)."""
    rng = random.Random(count)
    verbs = ["signed the petition at the town hall", "was named in the annual report",
             "testified before the committee on Monday", "joined the committee last year",
             "was seen at the hearing in the afternoon"]  # fmt: skip
    return "".join(f"{name} {rng.choice(verbs)}. " for name in crowd_names(count)) + "\n"
