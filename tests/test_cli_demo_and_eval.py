"""``knowledge demo`` and ``knowledge eval mentions`` as the README shows them, in a subprocess."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from knowledge_assets.db.engine import engine_for
from knowledge_assets.demo import corpus_files
from knowledge_assets.pipeline.store import GraphStore


def knowledge(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "knowledge_assets.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture
def env(tmp_path: Path, database_url: str) -> dict[str, str]:
    return dict(
        os.environ, KNOWLEDGE_HOME=str(tmp_path / "home"), KNOWLEDGE_DATABASE_URL=database_url
    )


def summary(stdout: str) -> dict[str, str]:
    """The ``  key   value`` lines of a pipeline summary."""
    return {
        match["key"]: match["value"]
        for match in re.finditer(r"^  (?P<key>[a-z ]+?) {2,}(?P<value>.+)$", stdout, re.M)
    }


def test_demo_extracts_the_demo_corpus_and_a_second_run_calls_no_extractor(
    env: dict[str, str], database_url: str
) -> None:
    first = knowledge(env, "demo")
    assert first.returncode == 0, first.stderr
    shown = summary(first.stdout)
    chunks = int(shown["chunks"])
    assert int(shown["documents"]) == len(corpus_files()) == 5
    assert shown["rejected"] == "0"
    assert int(shown["entities"]) > 0 and int(shown["mentions"]) > 0
    assert shown["extractor calls"] == f"{chunks} (cache hits 0)"
    store = GraphStore(engine_for(database_url))
    assert int(shown["rows inserted"]) == sum(store.counts().values())
    assert store.counts()["documents"] == 5
    assert "results are in the database at KNOWLEDGE_DATABASE_URL" in first.stdout
    rows = store.snapshot()

    second = knowledge(env, "demo")
    assert second.returncode == 0, second.stderr
    again = summary(second.stdout)
    assert second.stdout.splitlines()[0] == first.stdout.splitlines()[0]  # the same batch id
    assert again["extractor calls"] == f"0 (cache hits {chunks})"
    assert again["rows inserted"] == "0"
    assert store.snapshot() == rows


# A gold corpus in the ecbplus-dev format, written for this test. The offline model finds
# "Ingrid Halvorsen", "Trondheim", "Friday" and "Bergen" here, and nothing in "rye bread".
GOLD_DOCS = {
    "7_1ecb": (
        "Ingrid Halvorsen opened a bakery in Trondheim on Friday.\n"
        "The bakery sells rye bread to the neighbours.\n"
    ),
    "7_2ecbplus": (
        "Customers from Bergen queued outside the shop.\n"
        "the harbourmaster called it a quiet triumph.\n"
    ),
}
# (doc, text, type, named): only named HUM/LOC/NON mentions count, with any overlap.
GOLD_MENTIONS = [
    ("7_1ecb", "Ingrid Halvorsen", "HUM", True),  # found
    ("7_1ecb", "Halvorsen", "HUM", True),  # found: overlaps the model's "Ingrid Halvorsen"
    ("7_1ecb", "Trondheim", "LOC", True),  # found
    ("7_1ecb", "Friday", "TIM", True),  # not counted: a time
    ("7_1ecb", "The bakery", "NON", False),  # not counted: not a name
    ("7_1ecb", "rye bread", "NON", True),  # missed
    ("7_2ecbplus", "Bergen", "LOC", True),  # found
    ("7_2ecbplus", "the harbourmaster", "HUM", False),  # not counted: not a name
]


def write_gold_corpus(root: Path) -> Path:
    (root / "docs").mkdir(parents=True)
    (root / "gold").mkdir()
    for doc_id, text in GOLD_DOCS.items():
        (root / "docs" / f"{doc_id}.txt").write_text(text, encoding="utf-8")
    rows = []
    for n, (doc_id, text, kind, named) in enumerate(GOLD_MENTIONS):
        start = GOLD_DOCS[doc_id].index(text)
        rows.append(
            {
                "doc_id": doc_id,
                "start": start,
                "end": start + len(text),
                "text": text,
                "type": kind,
                "full_type": kind,
                "chain": f"{kind}{n}",
                "named": named,
                "topic": "7",
                "subtopic": "7" + doc_id.split("_")[1].lstrip("0123456789"),
            }
        )
    lines = "".join(json.dumps(row) + "\n" for row in rows)
    (root / "gold" / "mentions.jsonl").write_text(lines, encoding="utf-8")
    return root


def test_eval_mentions_prints_the_share_of_named_gold_mentions_found(
    env: dict[str, str], tmp_path: Path
) -> None:
    gold = write_gold_corpus(tmp_path / "gold-corpus")
    result = knowledge(env, "eval", "mentions", "--gold", str(gold))
    assert result.returncode == 0, result.stderr
    report = dict(line.split(None, 1) for line in result.stdout.splitlines())
    assert report["documents"] == "2"
    assert report["gold_named_mentions"] == "5"
    assert report["pipeline_recall"] == "0.8"  # 4 of 5
    assert report["raw_model_recall"] == "0.8"
    assert float(report["pipeline_seconds"]) >= 0


def test_eval_mentions_without_gold_mentions_is_a_clear_error(
    env: dict[str, str], tmp_path: Path
) -> None:
    result = knowledge(env, "eval", "mentions", "--gold", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.strip() == f"knowledge: error: {tmp_path} has no gold/mentions.jsonl"
