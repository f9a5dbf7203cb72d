"""Rules of the cascade that can be turned off, to measure what each one buys.

``knowledge eval resolution --without RULE`` resolves with the rule off: a rule that adds a
kind of evidence (a tier) then links nothing, and a rule that replaced an older behaviour
gives the older behaviour back. Production code always runs with every rule on.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["ALL_ON", "Rule"]


class Rule(StrEnum):
    """One rule of entity resolution, by the name the ``--without`` option takes."""

    ANCHORS = "anchors"
    """A partial name is tied to the longer name its own document (or the batch's documents
    together) uses, and a surname of namesakes is kept to its document (``anchors``)."""

    CONTEXT = "context"
    """A one-word start of a name joins a longer name of other documents only where the
    documents share another name (``context``); off, it joins wherever the batch has no rival."""

    STRAY_TAGS = "stray-tags"
    """A tag on one mention counts as type evidence only towards a name's head; off, it counts
    everywhere, as before."""

    FULL_NAMES = "full-names"
    """Two full names with one head whose other words differ ("Anna"/"Hanna Hartmann") never
    merge, whatever their labels; off, only person-labelled names get that guard."""

    SAME_NAME_APART = "same-name-apart"
    """The registry does not merge two same-named entities in-batch resolution kept apart."""

    ACRONYM = "acronym"
    PERSON = "person"
    PART = "part"
    FUZZY = "fuzzy"
    SOUND = "sound"


ALL_ON: frozenset[Rule] = frozenset()
"""The rules turned off in production: none."""
