"""Chunking: exact offsets, full coverage, size limits, sentence boundaries, linear time."""

from __future__ import annotations

import itertools
import random
import time
from pathlib import Path

import pytest

from knowledge_assets.pipeline.chunking import chunk_document, chunk_documents, sentence_spans
from knowledge_assets.pipeline.models import Chunk, Document

ECB_DOCS = Path(__file__).resolve().parents[2] / "shared" / "data" / "ecbplus-dev" / "docs"

WORDS = [
    "alpha", "Beta", "gamma", "Z\u00fcrich", "na\u00efve", "cafe\u0301", "\u4e2d\u6587",
    "\u0928\u092e\u0938\u094d\u0924\u0947",
    "\U0001f600", "\U0001f44d\U0001f3fd", "\U0001f468\u200d\U0001f469\u200d\U0001f467", "3.5",
    "U.S.", "Mr.", "Dr.", "Inc.", "J.", "e.g.", "etc.", "(aside)", "\"quoted\"", "x" * 40,
]  # fmt: skip
ENDINGS = [". ", "! ", "? ", '." ', ".) ", "... ", "\u3002", " "]
SPACES = [" ", "  ", "\t", "\n", "\r\n", "\r\n\r\n", "\u00a0", "\u2028", "\u3000", " \n "]


def document(text: str, name: str = "doc") -> Document:
    return Document.create(name, text)


def random_text(rng: random.Random) -> str:
    parts: list[str] = [rng.choice(["", " ", "\n", "\ufeff"])]
    for _ in range(rng.randrange(0, 40)):
        words = [rng.choice(WORDS) for _ in range(rng.randrange(1, 12))]
        parts.append(" ".join(words).capitalize())
        parts.append(rng.choice(ENDINGS))
        parts.append(rng.choice(SPACES) if rng.random() < 0.3 else "")
        if rng.random() < 0.05:
            parts.append("y" * rng.randrange(50, 400))
    parts.append(rng.choice(["", " ", "\r\n", "\n\n  "]))
    return "".join(parts)


def assert_invariants(doc: Document, chunks: list[Chunk], max_chars: int) -> None:
    text = doc.text
    covered_to = 0
    for index, chunk in enumerate(chunks):
        assert chunk.index == index
        assert chunk.document_id == doc.id
        assert text[chunk.start : chunk.end] == chunk.text
        assert 0 < len(chunk.text) <= max_chars
        assert chunk.text == chunk.text.strip()
        assert chunk.start >= covered_to, "chunks overlap"
        assert not text[covered_to : chunk.start].strip(), "visible text left out"
        covered_to = chunk.end
    assert not text[covered_to:].strip(), "visible text left out at the end"


@pytest.mark.parametrize("seed", range(60))
def test_offsets_are_exact_and_cover_every_visible_character(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(10):
        doc = document(random_text(rng))
        max_chars = rng.choice([1, 2, 7, 30, 120, 500, 10_000])
        assert_invariants(doc, chunk_document(doc, max_chars=max_chars), max_chars)


def test_character_soup_keeps_the_invariants() -> None:
    alphabet = (
        "aZ\u00e9\u0301\u4e2d\U0001f600\u200d.!?\"')([\u3002\uff01\u300d"
        " \t\n\r\v\f\x1c\x85\u00a0\u2028\u2029\u3000"
    )
    rng = random.Random(42)
    for _ in range(400):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 120)))
        doc = document(text)
        max_chars = rng.randrange(1, 40)
        assert_invariants(doc, chunk_document(doc, max_chars=max_chars), max_chars)
        spans = sentence_spans(text)
        assert all(s < e and text[s:e] == text[s:e].strip() for s, e in spans)


def test_chunks_hold_whole_sentences_when_they_fit() -> None:
    rng = random.Random(11)
    for _ in range(200):
        text = random_text(rng)
        spans = sentence_spans(text)
        longest = max((end - start for start, end in spans), default=1)
        max_chars = longest + rng.randrange(0, 200)
        chunks = chunk_document(document(text), max_chars=max_chars)
        starts, ends = [s for s, _ in spans], [e for _, e in spans]
        for chunk, following in itertools.pairwise(chunks):
            assert chunk.start in starts and chunk.end in ends
            next_end = ends[starts.index(following.start)]
            assert next_end - chunk.start > max_chars, "a chunk could have held one more sentence"


def test_sentences_split_on_end_punctuation() -> None:
    text = 'It rained. Did it? Yes! "Really." (Truly.) 42 people came. \u00c9mile left.'
    assert [text[s:e] for s, e in sentence_spans(text)] == [
        "It rained.",
        "Did it?",
        "Yes!",
        '"Really."',
        "(Truly.)",
        "42 people came.",
        "\u00c9mile left.",
    ]


def test_abbreviations_and_initials_do_not_end_sentences() -> None:
    text = (
        "Mr. and Mrs. Smith met Dr. Jones on St. Mark's Square. "
        "Acme Inc. hired J. R. Smith in Jan. 2009 in the U.S. after a talk, e.g. This one. "
        "See No. 5 and Fig. 2 for details. He said no. Then he left at 5 p.m. Tuesday."
    )
    assert [text[s:e] for s, e in sentence_spans(text)] == [
        "Mr. and Mrs. Smith met Dr. Jones on St. Mark's Square.",
        "Acme Inc. hired J. R. Smith in Jan. 2009 in the U.S. after a talk, e.g. This one.",
        "See No. 5 and Fig. 2 for details.",
        "He said no.",
        "Then he left at 5 p.m. Tuesday.",
    ]


def test_no_split_without_space_or_before_lower_case() -> None:
    text = "Version 3.5 of example.com is out. it was late.Really"
    assert [text[s:e] for s, e in sentence_spans(text)] == [text]


def test_a_line_break_always_ends_a_sentence() -> None:
    text = "Title without a stop\r\nBody text. More body\n\n  indented line  \u2028last"
    assert [text[s:e] for s, e in sentence_spans(text)] == [
        "Title without a stop",
        "Body text.",
        "More body",
        "indented line",
        "last",
    ]


def test_cjk_sentence_ends_need_no_space() -> None:
    text = "\u4eca\u5929\u4e0b\u96e8\u3002\u4f60\u597d\u5417\uff1f\u597d\u3002"
    assert [text[s:e] for s, e in sentence_spans(text)] == [
        "\u4eca\u5929\u4e0b\u96e8\u3002",
        "\u4f60\u597d\u5417\uff1f",
        "\u597d\u3002",
    ]


def test_sentences_are_packed_into_chunks() -> None:
    text = "One two. Three four. Five six.\r\nSeven."
    chunks = chunk_document(document(text), max_chars=20)
    assert [c.text for c in chunks] == ["One two. Three four.", "Five six.\r\nSeven."]
    assert chunks[1].start == text.index("Five")


def test_long_sentence_is_cut_at_the_last_space_that_fits() -> None:
    text = "aaa bbb ccc  dddd eeee"
    chunks = chunk_document(document(text), max_chars=8)
    assert [c.text for c in chunks] == ["aaa bbb", "ccc", "dddd", "eeee"]


def test_a_space_right_after_the_limit_still_fits() -> None:
    chunks = chunk_document(document("abcd efgh"), max_chars=4)
    assert [c.text for c in chunks] == ["abcd", "efgh"]


def test_long_line_without_spaces_is_cut_hard() -> None:
    text = "x" * 1_000_000
    began = time.perf_counter()
    chunks = chunk_document(document(text), max_chars=1_500)
    assert time.perf_counter() - began < 1.0
    assert len(chunks) == 667
    assert {len(c.text) for c in chunks[:-1]} == {1_500}
    assert chunks[-1].end == len(text)


def test_whitespace_only_documents_have_no_chunks() -> None:
    for text in ["", " ", "\r\n\t", "\u3000\u2028"]:
        assert chunk_document(document(text), max_chars=10) == []


def test_chunk_text_is_trimmed_and_crlf_kept_inside() -> None:
    text = "\r\n  First line.\r\nSecond line.  \r\n"
    (chunk,) = chunk_document(document(text), max_chars=100)
    assert chunk.text == "First line.\r\nSecond line."
    assert (chunk.start, chunk.end) == (4, 29)


def test_unicode_offsets_are_code_points() -> None:
    text = "\U0001f600 Cafe\u0301. \U0001f468\u200d\U0001f469\u200d\U0001f467 ok."
    chunks = chunk_document(document(text), max_chars=8)
    assert_invariants(document(text), chunks, 8)
    assert chunks[0].text == "\U0001f600 Cafe\u0301."


def test_many_documents_keep_their_own_indexes_and_ids() -> None:
    docs = [document("A one. A two.", "a"), document("B one.", "b"), document("  ", "c")]
    chunks = chunk_documents(docs, max_chars=7)
    assert [(c.document_id, c.index, c.text) for c in chunks] == [
        (docs[0].id, 0, "A one."),
        (docs[0].id, 1, "A two."),
        (docs[1].id, 0, "B one."),
    ]
    assert chunk_documents(docs, max_chars=7) == chunks
    assert len({c.id for c in chunks}) == 3


def test_max_chars_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_chars must be at least 1"):
        chunk_document(document("text"), max_chars=0)


def test_five_megabytes_chunk_in_linear_time() -> None:
    if ECB_DOCS.is_dir():
        sample = "".join(p.read_text(encoding="utf-8") for p in sorted(ECB_DOCS.glob("*.txt"))[:50])
    else:
        sample = random_text(random.Random(5)) * 20
    text = (sample * (5_000_000 // len(sample) + 1))[:5_000_000]
    doc = document(text)
    began = time.perf_counter()
    chunks = chunk_document(doc, max_chars=1_500)
    elapsed = time.perf_counter() - began
    assert elapsed < 2.0, f"5 MB took {elapsed:.2f} s"
    assert_invariants(doc, chunks, 1_500)
