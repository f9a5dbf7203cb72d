"""Sentence-aware chunks with exact character offsets into their document's text.

Sentence ends come from one regular expression plus a constant-time abbreviation check per
candidate; chunks are then cut at the last sentence end that fits (found by bisection), so the
cost stays linear in the text even for megabytes without a single sentence end.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable

from knowledge_assets.pipeline.models import Chunk, Document

__all__ = ["chunk_document", "chunk_documents", "sentence_spans"]

# The characters str.splitlines() breaks on: a line break always ends a sentence.
_LINE_BREAKS = "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"
_INLINE_SPACE = rf"[^\S{_LINE_BREAKS}]"
_CLOSERS = "\"'\u2019\u201d\u00bb)\\]}"
_OPENERS = "\"'\u2018\u201c\u00ab(\\[{"
_CJK_STOPS = "\u3002\uff01\uff1f\uff61"
_CJK_CLOSERS = "\u300d\u300f\uff09\u3011\u201d\u2019"
_BOUNDARY = re.compile(
    # The leading lookahead lets the engine skip fast to the few characters that can matter.
    rf"(?=[.!?{_CJK_STOPS}{_LINE_BREAKS}])(?:"
    rf"(?P<line>[{_LINE_BREAKS}]+)"
    # End punctuation, closing quotes/brackets, a space, then what may start a sentence; whether
    # it really does is decided in Python (case, abbreviations).
    rf"|(?P<stop>[.!?]+)[{_CLOSERS}]*(?={_INLINE_SPACE}+(?P<next>[{_OPENERS}\w]))"
    # CJK end punctuation needs no following space.
    rf"|[{_CJK_STOPS}]+[{_CJK_CLOSERS}]*)"
)
_OPENING_CHARS = _OPENERS.replace("\\", "")
_NON_SPACE = re.compile(r"\S")
_SPACE = re.compile(r"\s")
_WORD_WINDOW = 24

_ABBREVIATIONS = frozenset(
    {
        *("Mr", "Mrs", "Ms", "Mx", "Dr", "Prof", "Sr", "Jr", "St", "Mt", "Ft", "Rev", "Hon"),
        *("Gen", "Col", "Capt", "Lt", "Sgt", "Cmdr", "Adm", "Gov", "Sen", "Rep", "Pres"),
        *("Inc", "Ltd", "Co", "Corp", "Bros", "Dept", "Univ", "Assn", "Ave", "Blvd", "Rd"),
        *("Jan", "Feb", "Mar", "Apr", "Jun", "Jul", "Aug", "Sep", "Sept", "Oct", "Nov", "Dec"),
        *("etc", "vs", "al", "cf", "approx", "ca", "viz"),
    }
)
# Abbreviations that only stay inside a sentence when a number follows ("No. 5", "p. 12").
_NUMBER_ABBREVIATIONS = frozenset(
    {"No", "no", "Nos", "Vol", "vol", "p", "pp", "Fig", "fig", "Art", "art", "Ch", "ch", "Sec"}
)
# Dotted abbreviations such as "U.S", "e.g", "i.e", "a.m", "Ph.D" (the last dot is the match).
_DOTTED = re.compile(r"(?:[^\W\d_]{1,2}\.)+[^\W\d_]{1,2}")


def chunk_documents(documents: Iterable[Document], *, max_chars: int) -> list[Chunk]:
    """Chunk every document, in document order; see ``chunk_document``."""
    return [
        chunk for document in documents for chunk in chunk_document(document, max_chars=max_chars)
    ]


def chunk_document(document: Document, *, max_chars: int) -> list[Chunk]:
    """Pack whole sentences into chunks of at most ``max_chars`` characters.

    ``document.text[chunk.start:chunk.end] == chunk.text`` always holds; chunks are in order, do
    not overlap, start and end on a visible character, and between them there is only
    whitespace. A sentence longer than ``max_chars`` is cut at its last whitespace that fits, or
    hard at the limit when there is none.
    """
    if max_chars < 1:
        raise ValueError(f"max_chars must be at least 1, not {max_chars}")
    text = document.text
    ends = _sentence_ends(text)
    chunks: list[Chunk] = []
    start = _next_visible(text, 0)
    while start is not None:
        end = _chunk_end(text, ends, start, max_chars)
        chunks.append(Chunk.create(document, len(chunks), start, end))
        start = _next_visible(text, end)
    return chunks


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Half-open ``(start, end)`` ranges of the sentences of ``text``, whitespace trimmed."""
    spans: list[tuple[int, int]] = []
    start = _next_visible(text, 0)
    for end in _sentence_ends(text):
        if start is not None and start < end:
            spans.append((start, end))
            start = _next_visible(text, end)
    return spans


def _sentence_ends(text: str) -> list[int]:
    """Offsets just past the last visible character of every sentence, ascending."""
    ends: list[int] = []
    previous = 0
    for match in _BOUNDARY.finditer(text):
        end = _boundary_end(text, match, previous)
        previous = match.end()
        if end is not None and (not ends or end > ends[-1]):
            ends.append(end)
    final = len(text.rstrip())
    if final and (not ends or final > ends[-1]):
        ends.append(final)
    return ends


def _boundary_end(text: str, match: re.Match[str], previous: int) -> int | None:
    """The sentence end a boundary match makes, if any; ``previous`` is the last match's end."""
    if match.group("line") is None:
        return match.end() if _ends_sentence(text, match) else None
    # Between two boundary matches: cheap to scan, and each character is scanned once.
    visible = len(text[previous : match.start()].rstrip())
    return previous + visible if visible else None


def _ends_sentence(text: str, match: re.Match[str]) -> bool:
    stop = match.group("stop")
    if stop is None:
        return True
    after = match.group("next")
    if after.islower() or after == "_":
        return False
    if stop != ".":
        return True
    word = _word_before(text, match.start())
    if word in _NUMBER_ABBREVIATIONS:
        return not after.isdigit()
    is_initial = len(word) == 1 and word.isupper()
    return not (is_initial or word in _ABBREVIATIONS or _DOTTED.fullmatch(word))


def _word_before(text: str, position: int) -> str:
    """The word ending at ``position``, without opening quotes or brackets; bounded work."""
    window = text[max(0, position - _WORD_WINDOW) : position]
    pieces = window.split()
    return pieces[-1].lstrip(_OPENING_CHARS) if pieces and window[-1:].strip() else ""


def _chunk_end(text: str, ends: list[int], start: int, max_chars: int) -> int:
    """Where the chunk starting at ``start`` ends: the last sentence end within reach, if any."""
    limit = start + max_chars
    index = bisect_right(ends, limit) - 1
    if index >= 0 and ends[index] > start:
        return ends[index]
    # One sentence longer than max_chars. The text's last sentence end lies beyond ``limit``, so
    # text[limit] exists; a space there still lets the whole window fit.
    window = text[start + 1 : limit + 1]
    space = _SPACE.search(window[::-1])
    if space is None:
        return limit
    cut = limit - space.start()
    return start + len(text[start:cut].rstrip())


def _next_visible(text: str, position: int) -> int | None:
    match = _NON_SPACE.search(text, position)
    return None if match is None else match.start()
