"""Name nodes: the mentions of a batch grouped by normalised name and label, the unit we cluster."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

from knowledge_assets.pipeline.models import Evidence, Mention
from knowledge_assets.pipeline.resolution.consensus import consensus_labels
from knowledge_assets.pipeline.resolution.labels import LabelRules
from knowledge_assets.pipeline.resolution.normalize import normalize_name, numbers_in

__all__ = [
    "PERSON_TITLES",
    "NameNode",
    "PersonParts",
    "build_nodes",
    "person_parts",
    "person_tokens",
    "surface_mention",
]

PERSON_TITLES = frozenset(
    {"president", "vice", "senator", "congressman", "congresswoman", "representative"}
    | {"governor", "mayor", "judge", "justice", "chancellor", "minister", "prime", "secretary"}
    | {"general", "gen", "colonel", "col", "captain", "capt", "lieutenant", "lt", "sergeant"}
    | {"sgt", "officer", "detective", "chief", "sheriff", "rev", "reverend", "attorney", "pope"}
    | {"king", "queen", "prince", "princess"}
)
"""Leading words dropped from person names only: "President Obama" is Obama, while "General
Motors" (an organisation) keeps its first word."""

_GENERATIONAL = frozenset({"jr", "sr", "ii", "iii", "iv"})

SURNAME_PARTICLES = frozenset(
    {"de", "da", "di", "del", "della", "der", "den", "du", "la", "le", "lo", "van", "von"}
    | {"bin", "ibn", "al", "el", "dos", "das"}
)
"""Words that belong to the surname after them: "Lo Presti", "van Gogh", "bin Laden"."""


def person_tokens(tokens: Sequence[str]) -> tuple[str, ...]:
    """Tokens of a person's name without leading titles, keeping at least one token."""
    start = 0
    while start < len(tokens) - 1 and tokens[start] in PERSON_TITLES:
        start += 1
    return tuple(tokens[start:])


class PersonParts(NamedTuple):
    """A full person name split up; all empty for a one-word or non-person name."""

    given: str = ""
    middle: tuple[str, ...] = ()
    surname: str = ""


def person_parts(tokens: Sequence[str]) -> PersonParts:
    """First, middle and last name, ignoring generational suffixes ("Jr", "III").

    A surname keeps its particles ("Gaetano Lo Presti" is a Lo Presti), and a name that starts
    with one is a bare surname ("Lo Presti").
    """
    core = [tokens[0], *(t for t in tokens[1:] if t not in _GENERATIONAL)] if tokens else []
    if len(core) < 2 or core[0] in SURNAME_PARTICLES:
        return PersonParts()
    start = len(core) - 1
    while start > 1 and core[start - 1] in SURNAME_PARTICLES:
        start -= 1
    surname = " ".join(core[start:])
    if start > 1 and len(core[0]) == 1:
        # "W. Mark Felt" goes by his middle name: compare "Mark", keep "W" as a middle initial.
        return PersonParts(core[1], (core[0], *core[2:start]), surname)
    return PersonParts(core[0], tuple(core[1:start]), surname)


@dataclass(frozen=True)
class NameNode:
    """All mentions of a batch that share a comparison key and a label.

    ``key`` is the normalised name (for persons also without titles). ``acronym_like`` marks a
    one-word name written in capitals ("IBM", "U.N."), the only kind an expansion may match.
    ``anchor`` is the key of the longer name the mentions' own documents tie this partial name
    to ("tara reid" for "Reid"; ``anchors.anchor_nodes``), empty when none does; ``document``
    confines a short form of several longer names to the one document that uses it.
    """

    index: int
    key: str
    label: str
    tokens: tuple[str, ...]
    numbers: frozenset[str]
    person: bool
    acronym_like: bool
    mentions: tuple[Mention, ...]
    parts: PersonParts
    anchor: str = ""
    document: str = ""

    @cached_property
    def tags(self) -> Mapping[str, int]:
        """How many of the mentions carry each tag (their own labels, before the consensus)."""
        return Counter(m.label for m in self.mentions)

    @property
    def linkable(self) -> bool:
        """Whether any rule may still link it.

        Not one confined to its document, nor a one-word name tied by its documents, which
        only its tie links; a longer tied name may still be linked to.
        """
        return not self.document and not (self.anchor and len(self.tokens) < 2)

    @property
    def settled(self) -> bool:
        """Whether its own document decided what this name is part of (or that it is alone)."""
        return bool(self.anchor or self.document)

    @property
    def size(self) -> int:
        """Number of mentions, the unit of the cluster-size cap."""
        return len(self.mentions)

    @property
    def given(self) -> str:
        """First name of a multi-word person name; empty otherwise."""
        return self.parts.given

    @property
    def middle(self) -> tuple[str, ...]:
        """Names between the first name and the surname ("F" in "John F. Kennedy")."""
        return self.parts.middle

    @property
    def surname(self) -> str:
        """Last name of a multi-word person name (before "Jr", "III"); empty otherwise."""
        return self.parts.surname


def _is_acronym(surface: str) -> bool:
    letters = [c for c in surface if c.isalpha()]
    return 2 <= len(letters) <= 10 and all(c.isupper() for c in letters)


def _key(mention: Mention, person: bool) -> str:
    """Comparison key; a mention with no letters or digits is only ever equal to itself."""
    normal = normalize_name(mention.text)
    if person:
        normal = " ".join(person_tokens(normal.split()))
    return normal or f"\x00{mention.id}"


def surface_mention(text: str, label: str, source: str) -> Mention:
    """A stand-in mention for a name known without a span (a registry entry, an alias).

    ``source`` becomes its document, so names from different sources never look as if one
    document supported them both.
    """
    evidence = Evidence(
        document_id=source,
        chunk_id=source,
        start=0,
        end=len(text),
        batch_id=source,
        extractor="registry",
        extractor_version="1",
    )
    return Mention(
        id=f"{source}\x1f{text}",
        document_id=source,
        chunk_id=source,
        start=0,
        end=len(text),
        text=text,
        label=label,
        evidence=evidence,
    )


def build_nodes(mentions: Sequence[Mention], labels: LabelRules) -> list[NameNode]:
    """Group mentions into nodes, ordered by (key, label) so indices are deterministic.

    A node's label is the batch's consensus label for the name (``consensus_labels``).
    """
    groups: dict[tuple[str, str], list[Mention]] = defaultdict(list)
    voted = consensus_labels(mentions, labels)
    for mention in mentions:
        label = voted[mention.id]
        groups[_key(mention, labels.is_person(label)), label].append(mention)
    nodes = []
    for index, (key, label) in enumerate(sorted(groups)):
        members = tuple(sorted(groups[key, label], key=lambda m: m.id))
        tokens = tuple(key.split())
        person = labels.is_person(label)
        nodes.append(
            NameNode(
                index=index,
                key=key,
                label=label,
                tokens=tokens,
                numbers=frozenset().union(*(numbers_in(m.text) for m in members)),
                person=person,
                acronym_like=len(tokens) == 1 and all(_is_acronym(m.text) for m in members),
                mentions=members,
                parts=person_parts(tokens) if person else PersonParts(),
            )
        )
    return nodes
