"""`knowledge resolve` and `knowledge eval resolution` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from knowledge_assets.evaluation.resolution import evaluate_resolution, exact_key, head_key
from knowledge_assets.settings import Settings
from tests.conftest import require_ecbplus
from tests.test_cli import knowledge

LINES = [
    {"doc_id": "d1", "start": 0, "end": 9, "text": "Tara Reid", "type": "HUM", "topic": "a"},
    {"doc_id": "d1", "start": 30, "end": 34, "text": "Reid", "type": "HUM", "topic": "a"},
    {"doc_id": "d2", "start": 0, "end": 3, "text": "IBM", "type": "ORG", "topic": "b"},
    {
        "doc_id": "d3",
        "start": 5,
        "end": 36,
        "text": "International Business Machines",
        "type": "ORG",
    },
    {"doc_id": "d3", "start": 50, "end": 60, "text": "Flight 101", "type": "NON"},
    {"doc_id": "d3", "start": 70, "end": 80, "text": "Flight 102", "type": "NON"},
]


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    import os

    return dict(os.environ)


def test_resolve_writes_the_lines_with_entity_ids(cli_env: dict[str, str], tmp_path: Path) -> None:
    source = tmp_path / "mentions.jsonl"
    source.write_text("".join(json.dumps(line) + "\n" for line in LINES), encoding="utf-8")
    run = knowledge(cli_env, "resolve", str(source), "--batch-field", "topic")
    assert run.returncode == 0, run.stderr
    out = [json.loads(line) for line in run.stdout.splitlines()]
    assert [{k: v for k, v in o.items() if k != "entity_id"} for o in out] == LINES
    ids = [o["entity_id"] for o in out]
    assert ids[0] == ids[1] and ids[2] == ids[3] and ids[4] != ids[5]
    assert len(set(ids)) == 4
    again = knowledge(cli_env, "resolve", str(source), "--batch-field", "topic", "--json")
    summary = json.loads(again.stdout)
    assert [m["entity_id"] for m in summary["mentions"]] == ids
    assert (summary["entities"], summary["batches"]) == (4, 3)


def test_resolve_refuses_a_line_without_a_span(cli_env: dict[str, str], tmp_path: Path) -> None:
    source = tmp_path / "bad.jsonl"
    source.write_text('{"doc_id": "d1", "text": "Reid", "type": "HUM"}\n', encoding="utf-8")
    run = knowledge(cli_env, "resolve", str(source))
    assert run.returncode == 2
    assert "bad.jsonl:1: missing start, end" in run.stderr


def test_baseline_keys() -> None:
    assert exact_key("The Hollywood Reporter", "HUM") == "HUM|the hollywood reporter"
    assert head_key("Tara Reid's", "HUM") == head_key("Reid", "HUM") != head_key("Reid", "LOC")


def test_resolver_beats_the_baselines_on_ecbplus(settings: Settings) -> None:
    report = evaluate_resolution(require_ecbplus(), settings, end_to_end=False)
    resolver = report["resolver_alone"]["b_cubed"]["f1"]
    assert resolver >= 0.92
    assert resolver >= report["baseline_head"]["b_cubed"]["f1"] + 0.05
    assert resolver > report["baseline_exact"]["b_cubed"]["f1"]
