"""Blocking keys: the index entries under which a name finds its possible canonicals.

A key is ``root|kind:value``, so only names of one root type ever meet. Kinds: ``n`` the
normalised name, ``a`` an acronym ("ibm" for "International Business Machines" and for "IBM"),
``i`` first initial and last word ("j smith" for "John F. Smith"), ``p`` the words' phonetic
codes ("Bettie Page" and "Betty Page" share one).
"""

from __future__ import annotations

import jellyfish

from knowledge_assets.pipeline.resolution.normalize import acronym_variants, normalize_name

__all__ = ["is_acronym", "is_exact", "lookup_keys", "name_keys"]

EXACT_KINDS = ("n:", "a:")
"""Key kinds that spell the name itself (normalised or as an acronym): the strong evidence."""


def is_exact(key: str) -> bool:
    """Whether a key is a name or acronym key rather than a phonetic or initial one."""
    return key.partition("|")[2].startswith(EXACT_KINDS)


def is_acronym(text: str) -> bool:
    """A one-word name written in capitals ("IBM", "U.N."): the form an acronym takes."""
    letters = [c for c in text if c.isalpha()]
    return " " not in text.strip() and 2 <= len(letters) <= 10 and all(c.isupper() for c in letters)


def name_keys(root: str, text: str) -> frozenset[str]:
    """Every blocking key of one surface form under one root type."""
    normal = normalize_name(text)
    if not normal:
        return frozenset()
    tokens = normal.split()
    keys = {f"n:{normal}", "p:" + " ".join(jellyfish.metaphone(t) or t for t in tokens)}
    if len(tokens) >= 2:
        keys |= {f"a:{a}" for a in acronym_variants(tokens)}
        keys.add(f"i:{tokens[0][0]} {tokens[-1]}")
    elif is_acronym(text):
        keys.add(f"a:{normal}")
    return frozenset(f"{root}|{key}" for key in keys)


def lookup_keys(root: str, text: str) -> frozenset[str]:
    """The keys to look a surface form up under: the mirror image of ``name_keys``.

    An acronym looks for expansions (``a:``); an expansion looks for canonicals named by its
    acronym (``n:ibm``), never for other expansions with the same initials, which a big
    registry holds by the thousand ("Bank of Kyoto", "Big Kahuna" for "bk").
    """
    stored = name_keys(root, text)
    tokens = normalize_name(text).split()
    if len(tokens) < 2:
        return stored
    acronyms = {k.partition("|a:")[2] for k in stored if "|a:" in k}
    return frozenset({k for k in stored if "|a:" not in k} | {f"{root}|n:{a}" for a in acronyms})
