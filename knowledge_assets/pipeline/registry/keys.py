"""Blocking keys: the index entries under which a name finds its possible canonicals.

A key is ``root|kind:value``, so only names of one root type ever meet. Kinds: ``n`` the
normalised name, ``a`` an acronym ("ibm" for "International Business Machines" and for "IBM"),
``i`` first initial and last word ("j smith" for "John F. Smith"), ``p`` the words' phonetic
codes ("Bettie Page" and "Betty Page" share one).
"""

from __future__ import annotations

import jellyfish

from knowledge_assets.pipeline.resolution.normalize import acronym_variants, normalize_name

__all__ = ["is_acronym", "name_keys"]


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
