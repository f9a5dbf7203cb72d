"""Reading a gold corpus in the ecbplus-dev format (``docs/*.txt`` and ``gold/mentions.jsonl``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

NAMED_TYPES = frozenset({"HUM", "LOC", "NON"})


@dataclass(frozen=True)
class GoldMention:
    """One annotated mention: document, span, type and its cross-document chain."""

    doc_id: str
    start: int
    end: int
    text: str
    type: str
    chain: str
    named: bool
    topic: str


def load_gold_mentions(root: Path) -> list[GoldMention]:
    """All gold mentions of the corpus at ``root``."""
    mentions = []
    with (root / "gold" / "mentions.jsonl").open(encoding="utf-8") as lines:
        for line in lines:
            row = json.loads(line)
            mentions.append(
                GoldMention(
                    doc_id=row["doc_id"],
                    start=row["start"],
                    end=row["end"],
                    text=row["text"],
                    type=row["type"],
                    chain=row["chain"],
                    named=bool(row.get("named", False)),
                    topic=str(row.get("topic", "")),
                )
            )
    return mentions


def named_entity_mentions(mentions: list[GoldMention]) -> list[GoldMention]:
    """The named HUM/LOC/NON mentions: what an NER model is expected to find."""
    return [m for m in mentions if m.named and m.type in NAMED_TYPES]


def gold_doc_id(document_name: str) -> str:
    """The gold id of a pipeline document: its name without folders or extension.

    Gold files name documents by file stem (``1_1ecb``); the pipeline by the file's name as
    submitted (``1_1ecb.txt``).
    """
    return PurePosixPath(document_name).stem


def doc_paths(root: Path) -> list[Path]:
    """The corpus documents, sorted."""
    return sorted((root / "docs").glob("*.txt"))
