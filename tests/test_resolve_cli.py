"""`knowledge resolve` and `knowledge eval resolution` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from knowledge_assets.evaluation.errors import error_classes
from knowledge_assets.evaluation.folds import THRESHOLDS, topic_folds
from knowledge_assets.evaluation.gold import GoldMention
from knowledge_assets.evaluation.resolution import evaluate_resolution, exact_key, head_key
from knowledge_assets.pipeline.resolution.evaluate import b_cubed
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


def _tiny_corpus(root: Path) -> Path:
    """Four topics in the ecbplus-dev format, written for this test."""
    rows = []
    for topic, (full, short) in enumerate(
        [
            ("Greta Hartmann", "Hartmann"),
            ("Harbour Bank", "Harbour"),
            ("Nils Berg", "Berg"),
            ("Seaway Cable", "Seaway"),
        ],
        start=1,
    ):
        for n, text in enumerate((full, short, full)):
            doc = f"{topic}_{n}ecb"
            rows.append(
                {
                    "doc_id": doc,
                    "start": 0,
                    "end": len(text),
                    "text": text,
                    "type": "HUM",
                    "chain": f"c{topic}",
                    "named": True,
                    "topic": str(topic),
                }
            )
    (root / "gold").mkdir(parents=True)
    (root / "docs").mkdir()
    (root / "gold" / "mentions.jsonl").write_text(
        "".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8"
    )
    return root


def test_topic_folds_deal_topics_round_robin() -> None:
    assert topic_folds(["10", "2", "1", "3", "2"], 2) == [["1", "3"], ["2", "10"]]
    with pytest.raises(ValueError, match="folds"):
        topic_folds(["1", "2"], 3)


def test_eval_resolution_scores_leave_topics_out(cli_env: dict[str, str], tmp_path: Path) -> None:
    root = _tiny_corpus(tmp_path / "tiny")
    run = knowledge(
        cli_env, "eval", "resolution", "--gold", str(root), "--no-end-to-end", "--folds", "2",
        "--without", "anchors", "--json",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert [fold["topics"] for fold in report["folds"]] == [["1", "3"], ["2", "4"]]
    assert all(fold["threshold"] in THRESHOLDS for fold in report["folds"])
    assert report["without"] == ["anchors"]
    assert 0 < report["folds_mean_resolver_f1"] <= 1
    one = knowledge(cli_env, "eval", "resolution", "--gold", str(root), "--no-end-to-end",
                    "--one-batch", "--json")  # fmt: skip
    assert json.loads(one.stdout)["batches"] == 1
    bad = knowledge(cli_env, "eval", "resolution", "--gold", str(root), "--without", "magic")
    assert bad.returncode == 2 and "magic" in bad.stderr


def test_error_classes_add_up_to_the_points_lost() -> None:
    def g(text: str, chain: str, topic: str, kind: str = "HUM") -> GoldMention:
        return GoldMention("d", 0, len(text), text, kind, chain, True, topic)

    gold = [g("Nils Berg", "c1", "1"), g("Berg", "c1", "1"), g("Berg", "c2", "2"),
            g("Seaway", "c3", "2", "LOC"), g("Seaway Cable", "c3", "2", "LOC")]  # fmt: skip
    # "Berg" of topic 2 wrongly joins Nils Berg; Seaway misses Seaway Cable.
    predicted = {"0": "a", "1": "a", "2": "a", "3": "b", "4": "c"}
    errors = error_classes(gold, predicted, top=5)
    truth = {str(i): x.chain for i, x in enumerate(gold)}
    b3 = b_cubed(truth, predicted)
    assert errors["precision_lost"] == pytest.approx(1 - b3.precision, abs=1e-4)
    assert errors["recall_lost"] == pytest.approx(1 - b3.recall, abs=1e-4)
    assert errors["precision_lost_across_topics"] == errors["precision_lost"]
    assert errors["by_type"]["LOC"]["precision"] == 0 < errors["by_type"]["LOC"]["recall"]
    assert errors["wrong_merges"][0]["parts"] == ["Berg / Nils Berg", "Berg"]
    assert errors["missed_merges"][0]["parts"] == ["Seaway", "Seaway Cable"]
