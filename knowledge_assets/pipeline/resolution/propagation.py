"""Names the extractor found once, found again where it missed them in the same batch.

A statistical tagger finds "Colts" in one sentence and misses it in a headline or a list. Every
other exact occurrence of a name the batch's extractor did find becomes a mention too, with the
label the extractor gave that name most often. Only spans no extracted mention touches are
added, matching is case-sensitive (plus the all-capitals form of headlines), and a one-word name
that the batch also writes in lower case ("Page", "page") is never taken at a sentence start,
where any word is capitalised.
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence

from knowledge_assets.pipeline.models import Chunk, Evidence, Mention, stable_id
from knowledge_assets.pipeline.resolution.surface import name_core

__all__ = ["EXTRACTOR", "propagate_mentions"]

EXTRACTOR = "propagation"
"""The ``extractor`` of a propagated mention's evidence, so its provenance stays visible."""

MAX_WORDS = 5
"""Longer extracted spans are headlines or lists, not names worth looking for again."""

MIN_CHARS = 3
"""Shorter names ("US", "AP") are too often something else; they are left to the extractor."""

_WORD = re.compile(r"\w+")
_SENTENCE_ENDS = frozenset('.!?:;"\u201c\n\r')
"""Characters after which (and blanks) the next word is capitalised whatever it is."""

Words = tuple[str, ...]


def _words(text: str) -> Words:
    return tuple(_WORD.findall(text))


def _wanted(core: str) -> bool:
    words = _words(core)
    return (
        0 < len(words) <= MAX_WORDS
        and len(core) >= MIN_CHARS
        and "\n" not in core
        and core[0].isupper()
        and not any(c.isdigit() for c in core)
    )


def _names(mentions: Iterable[Mention]) -> dict[Words, tuple[str, str]]:
    """Word sequence -> (exact name text, most frequent label) of every name worth finding."""
    labels: dict[str, Counter[str]] = defaultdict(Counter)
    for mention in mentions:
        core = name_core(mention.text)
        if _wanted(core):
            labels[core][mention.label] += 1
    found: dict[Words, tuple[str, str]] = {}
    for core in sorted(labels):
        label = min(labels[core].items(), key=lambda item: (-item[1], item[0]))[0]
        for form in (core, core.upper()):
            found.setdefault(_words(form), (form, label))
    return found


def _lower_case_words(texts: Iterable[str]) -> frozenset[str]:
    return frozenset(w for text in texts for w in _WORD.findall(text) if w.islower())


class _Spans:
    """Spans sorted by start, with the furthest end reached up to each: ``free`` is a bisect."""

    def __init__(self, spans: Iterable[tuple[int, int]] = ()) -> None:
        self._spans = sorted(spans)
        self._index()

    def _index(self) -> None:
        self._starts = [s for s, _ in self._spans]
        self._reach = list(itertools.accumulate((e for _, e in self._spans), max))

    def free(self, start: int, end: int) -> bool:
        at = bisect.bisect_left(self._starts, end)
        return at == 0 or self._reach[at - 1] <= start

    def add(self, start: int, end: int) -> None:
        if not self._spans or start >= self._spans[-1][0]:  # the scan adds left to right
            self._spans.append((start, end))
            self._starts.append(start)
            self._reach.append(max(end, self._reach[-1]) if self._reach else end)
        else:
            bisect.insort(self._spans, (start, end))
            self._index()


class _Taken:
    """Character ranges of one document already covered by a mention.

    Each check is a binary search, not a scan of every span before it: on one document of
    50,000 names the scan made propagation quadratic (minutes; issue 16).
    """

    def __init__(self, spans: Iterable[tuple[int, int]]) -> None:
        self._extracted = _Spans(spans)
        self._added = _Spans()

    def free(self, start: int, end: int) -> bool:
        return self._extracted.free(start, end) and self._added.free(start, end)

    def add(self, start: int, end: int) -> None:
        self._added.add(start, end)


def _occurrences(
    text: str, names: Mapping[Words, tuple[str, str]], common: frozenset[str], taken: _Taken
) -> list[tuple[int, int, str, str]]:
    """(start, end, text, label) of the free occurrences of ``names``, longest first."""
    tokens = list(_WORD.finditer(text))
    found = []
    for i in range(len(tokens)):
        for n in range(min(MAX_WORDS, len(tokens) - i), 0, -1):
            hit = names.get(tuple(t.group(0) for t in tokens[i : i + n]))
            if hit is None:
                continue
            start, end = tokens[i].start(), tokens[i + n - 1].end()
            if text[start:end] != hit[0] or not taken.free(start, end):
                continue
            if n == 1 and hit[0].lower() in common and _sentence_start(text, start):
                continue
            taken.add(start, end)
            found.append((start, end, hit[0], hit[1]))
            break
    return found


def _sentence_start(text: str, start: int) -> bool:
    at = start - 1
    while at >= 0 and text[at] in " \t":
        at -= 1
    return at < 0 or text[at] in _SENTENCE_ENDS


def _chunk_at(chunks: Sequence[Chunk], start: int, end: int) -> Chunk | None:
    return next((c for c in chunks if c.start <= start and end <= c.end), None)


def propagate_mentions(
    batch_id: str,
    mentions: Sequence[Mention],
    texts: Mapping[str, str],
    chunks: Sequence[Chunk],
) -> tuple[Mention, ...]:
    """New mentions for the occurrences of the batch's names that no mention covers.

    Args:
        batch_id: The batch the new mentions' evidence names.
        mentions: The extracted mentions of the batch.
        texts: Document id -> full text, for the documents to search.
        chunks: The batch's chunks; a new mention belongs to the chunk that contains it (one
            that straddles two chunks is skipped).

    Returns:
        The new mentions, by document and offset.
    """
    names = _names(mentions)
    if not names:
        return ()
    common = _lower_case_words(texts.values())
    by_document: dict[str, list[Chunk]] = defaultdict(list)
    for chunk_ in chunks:
        by_document[chunk_.document_id].append(chunk_)
    spans: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for mention in mentions:
        spans[mention.document_id].append((mention.start, mention.end))
    added = []
    for document_id in sorted(texts):
        taken = _Taken(spans[document_id])
        for start, end, text, label in _occurrences(texts[document_id], names, common, taken):
            home = _chunk_at(by_document[document_id], start, end)
            if home is not None:
                added.append(_mention(batch_id, home, start, end, text, label))
    return tuple(added)


def _mention(batch_id: str, chunk_: Chunk, start: int, end: int, text: str, label: str) -> Mention:
    evidence = Evidence(
        document_id=chunk_.document_id,
        chunk_id=chunk_.id,
        start=start,
        end=end,
        batch_id=batch_id,
        extractor=EXTRACTOR,
        extractor_version="1",
    )
    return Mention(
        id=stable_id("men", chunk_.document_id, start, end, label),
        document_id=chunk_.document_id,
        chunk_id=chunk_.id,
        start=start,
        end=end,
        text=text,
        label=label,
        evidence=evidence,
    )
