"""Names found once by the extractor are found again where it missed them in the batch."""

from __future__ import annotations

from knowledge_assets.pipeline.models import Chunk, Evidence, Mention
from knowledge_assets.pipeline.resolution.propagation import EXTRACTOR, propagate_mentions


def chunk(document: str, text: str) -> Chunk:
    return Chunk(
        id=f"chk_{document}", document_id=document, index=0, start=0, end=len(text), text=text,
        sha256="0",
    )  # fmt: skip


def extracted(document: str, text: str, name: str, label: str) -> Mention:
    start = text.index(name)
    end = start + len(name)
    evidence = Evidence(
        document_id=document, chunk_id=f"chk_{document}", start=start, end=end, batch_id="b",
        extractor="spacy", extractor_version="1",
    )  # fmt: skip
    return Mention(
        id=f"men_{document}_{start}", document_id=document, chunk_id=f"chk_{document}",
        start=start, end=end, text=name, label=label, evidence=evidence,
    )  # fmt: skip


def found(texts: dict[str, str], mentions: list[Mention]) -> list[tuple[str, str, str]]:
    chunks = [chunk(d, t) for d, t in texts.items()]
    added = propagate_mentions("b", mentions, texts, chunks)
    assert all(m.evidence.extractor == EXTRACTOR for m in added)
    assert all(texts[m.document_id][m.start : m.end] == m.text for m in added)
    return [(m.document_id, m.text, m.label) for m in added]


def test_a_missed_name_in_another_document_becomes_a_mention() -> None:
    texts = {
        "a": "Fans of the Indianapolis Colts cheered.",
        "b": "COLTS WIN. Fans of the Colts cheered.",
    }
    mentions = [extracted("a", texts["a"], "the Indianapolis Colts", "Organization")]
    mentions.append(extracted("b", texts["b"], "the Colts", "Organization"))
    assert found(texts, mentions) == [("b", "COLTS", "Organization")]


def test_covered_spans_and_other_case_are_left_alone() -> None:
    texts = {"a": "Tara Reid left. tara reid fans and Tara Reid's agent."}
    mentions = [extracted("a", texts["a"], "Tara Reid", "Person")]
    assert found(texts, mentions) == [("a", "Tara Reid", "Person")]


def test_a_common_word_is_not_taken_at_a_sentence_start() -> None:
    text = "Agents trusted Felt. She felt ill. Felt was 95. Later Felt retired."
    mentions = [_at(text, "trusted Felt", "Felt")]
    assert found({"a": text}, mentions) == [("a", "Felt", "Person")]
    assert [
        m.start for m in propagate_mentions("b", mentions, {"a": text}, [chunk("a", text)])
    ] == [text.index("Later Felt") + len("Later ")]


def test_names_with_digits_or_too_short_are_not_propagated() -> None:
    texts = {"a": "Flight 101 left. Then Flight 101 again. US and US."}
    mentions = [extracted("a", texts["a"], "Flight 101", "Event")]
    mentions.append(extracted("a", texts["a"], "US", "Place"))
    assert found(texts, mentions) == []


def _at(text: str, context: str, name: str) -> Mention:
    start = text.index(context) + context.index(name)
    end = start + len(name)
    evidence = Evidence(
        document_id="a", chunk_id="chk_a", start=start, end=end, batch_id="b",
        extractor="spacy", extractor_version="1",
    )  # fmt: skip
    return Mention(
        id=f"men_a_{start}", document_id="a", chunk_id="chk_a", start=start, end=end, text=name,
        label="Person", evidence=evidence,
    )  # fmt: skip
