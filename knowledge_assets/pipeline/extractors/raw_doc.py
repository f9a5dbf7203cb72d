"""spaCy's output for one chunk as plain JSON, and a stand-in ``Doc`` read back from it.

The relation patterns read a ``Doc``'s tokens (text, lemma, tag) and named entities (token and
character offsets, label); that is all ``raw_output`` keeps, and ``RawDoc`` offers exactly
those attributes again, so the patterns run the same on a parsed document and on a cached one.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, overload

from knowledge_assets.pipeline.extractors.base import RawOutput

__all__ = ["RawDoc", "RawSpan", "RawToken", "raw_output"]


def raw_output(doc: Any) -> dict[str, Any]:
    """The parts of a ``Doc`` the relation patterns read, as JSON.

    Tokens as ``[text, lemma, tag]``, entities as ``[start, end, start_char, end_char, label]``
    (token offsets half-open, character offsets into the chunk's text).
    """
    return {
        "tokens": [[t.text, t.lemma_, t.tag_] for t in doc],
        "ents": [[e.start, e.end, e.start_char, e.end_char, e.label_] for e in doc.ents],
    }


@dataclass(frozen=True)
class RawToken:
    """A token's text, lemma and fine-grained tag, named as spaCy names them."""

    text: str
    lemma_: str
    tag_: str

    @property
    def lower_(self) -> str:
        """The text in lower case."""
        return self.text.lower()


@dataclass(frozen=True)
class RawSpan:
    """A named entity: token offsets, character offsets, text and spaCy's label."""

    start: int
    end: int
    start_char: int
    end_char: int
    text: str
    label_: str


class RawDoc:
    """Tokens and entities of one chunk; slicing gives tokens, as a ``Doc`` does."""

    def __init__(self, tokens: Sequence[RawToken], ents: Sequence[RawSpan]) -> None:
        self._tokens = list(tokens)
        self.ents = tuple(ents)

    @classmethod
    def parse(cls, text: str, raw: RawOutput) -> RawDoc:
        """Read ``raw_output``'s JSON back; entity texts are cut from the chunk's ``text``."""
        tokens = [RawToken(*token) for token in raw["tokens"]]
        ents = [
            RawSpan(start, end, first, last, text[first:last], label)
            for start, end, first, last, label in raw["ents"]
        ]
        return cls(tokens, ents)

    @overload
    def __getitem__(self, index: int) -> RawToken: ...

    @overload
    def __getitem__(self, index: slice) -> list[RawToken]: ...

    def __getitem__(self, index: int | slice) -> RawToken | list[RawToken]:
        return self._tokens[index]

    def __iter__(self) -> Iterator[RawToken]:
        return iter(self._tokens)

    def __len__(self) -> int:
        return len(self._tokens)
