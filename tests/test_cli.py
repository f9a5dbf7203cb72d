"""The ``knowledge`` command as a user runs it: a real subprocess against a real database."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from knowledge_assets.cli.main import build_parser
from knowledge_assets.db.engine import engine_for
from knowledge_assets.demo import CORPUS_DIR
from knowledge_assets.pipeline.store import GraphStore
from tests.conftest import require_ecbplus


def knowledge(env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "knowledge_assets.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def cli_env(tmp_path: Path, database_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env["KNOWLEDGE_HOME"] = str(tmp_path / "home")
    env["KNOWLEDGE_DATABASE_URL"] = database_url
    return env


def _last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def test_extract_json_then_again_makes_no_extractor_call(cli_env: dict[str, str]) -> None:
    first = knowledge(cli_env, "extract", str(CORPUS_DIR), "--json")
    assert first.returncode == 0, first.stderr
    summary = _last_json(first.stdout)
    for key in (
        "documents",
        "chunks",
        "mentions",
        "entities",
        "relations",
        "quarantined",
        "extractor_calls",
        "cache_hits",
    ):
        assert key in summary
    assert summary["documents"] == 5
    second = _last_json(knowledge(cli_env, "extract", str(CORPUS_DIR), "--json").stdout)
    assert second["extractor_calls"] == 0
    assert second["cache_hits"] == summary["chunks"]
    assert second["inserted_rows"] == 0


def test_export_formats(cli_env: dict[str, str]) -> None:
    assert knowledge(cli_env, "extract", str(CORPUS_DIR)).returncode == 0
    turtle = knowledge(cli_env, "export", "--format", "ttl")
    assert turtle.returncode == 0, turtle.stderr
    assert "@prefix" in turtle.stdout
    jsonld = knowledge(cli_env, "export", "--format", "jsonld")
    assert json.loads(jsonld.stdout)
    mentions = knowledge(cli_env, "export", "--format", "mentions").stdout.splitlines()
    rows = [json.loads(line) for line in mentions]
    assert rows
    assert set(rows[0]) == {"doc_id", "start", "end", "text", "type", "entity_id"}
    texts = {p.name: p.read_text(encoding="utf-8") for p in CORPUS_DIR.glob("*.txt")}
    assert all(texts[r["doc_id"]][r["start"] : r["end"]] == r["text"] for r in rows)

    # `knowledge export --format mentions | head -2`, through a real pipe made small (one page)
    # so that the export outgrows it and head's exit really breaks it.
    piped = export_into_head(cli_env, lines=2)
    assert piped.head_output.splitlines() == mentions[:2]
    assert piped.stderr == ""
    assert piped.returncode == 141  # the pipe did break: the handler ran, not a lucky fit


@dataclass
class Piped:
    returncode: int
    stderr: str
    head_output: str


def export_into_head(env: dict[str, str], lines: int) -> Piped:
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, getattr(fcntl, "F_SETPIPE_SZ", 1031), 4096)
    head = subprocess.Popen(
        ["head", f"-{lines}"], stdin=read_end, stdout=subprocess.PIPE, text=True
    )
    export = subprocess.Popen(
        [sys.executable, "-m", "knowledge_assets.cli", "export", "--format", "mentions"],
        env=env, stdout=write_end, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    os.close(read_end)
    os.close(write_end)
    head_output, _ = head.communicate(timeout=300)
    _, stderr = export.communicate(timeout=300)
    return Piped(export.returncode, stderr, head_output)


def test_broken_ontology_is_a_clear_error(cli_env: dict[str, str], tmp_path: Path) -> None:
    broken = tmp_path / "broken.ttl"
    broken.write_text("@prefix ex: <http://example.org/> .\nex:A a ex:B ;;; .\n", encoding="utf-8")
    result = knowledge(cli_env, "extract", str(CORPUS_DIR), "--ontology", str(broken))
    assert result.returncode == 2
    assert "ontology" in result.stderr
    assert "broken.ttl" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_path_is_a_clear_error(cli_env: dict[str, str], tmp_path: Path) -> None:
    result = knowledge(cli_env, "extract", str(tmp_path / "nope"))
    assert result.returncode == 2
    assert "no such file or folder" in result.stderr


@pytest.mark.slow  # the whole corpus twice (90 s); make test proves idempotency on the demo corpus
def test_ecbplus_corpus_twice_is_idempotent(cli_env: dict[str, str], database_url: str) -> None:
    corpus = require_ecbplus()
    env = dict(cli_env, KNOWLEDGE_SPACY_PROCESSES="2")
    first = knowledge(env, "extract", str(corpus / "docs"), "--json")
    assert first.returncode == 0, first.stderr
    summary = _last_json(first.stdout)
    assert summary["documents"] == 772
    assert summary["extractor_calls"] == summary["chunks"] > 0
    store = GraphStore(engine_for(database_url))
    counts, rows = store.counts(), store.snapshot()
    assert counts["mentions"] == summary["mentions"]
    second = _last_json(knowledge(env, "extract", str(corpus / "docs"), "--json").stdout)
    assert second["extractor_calls"] == 0
    assert second["inserted_rows"] == 0
    assert store.counts() == counts
    assert store.snapshot() == rows


def test_export_with_a_broken_ontology_is_a_clear_error(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    empty = tmp_path / "empty.ttl"
    empty.write_text("", encoding="utf-8")
    result = knowledge(cli_env, "export", "--ontology", str(empty))
    assert result.returncode == 2
    assert "empty.ttl" in result.stderr
    assert "Traceback" not in result.stderr


def test_help_reads_as_plain_text(capsys: pytest.CaptureFixture[str]) -> None:
    top = help_of(capsys)
    assert top.splitlines()[2].startswith("Turn document batches into a knowledge graph")
    commands = [line.split()[0] for line in top.splitlines() if line.startswith("    ")]
    assert {"extract", "submit", "batches", "status", "up"} <= set(commands)
    for text in [top, *(help_of(capsys, command) for command in commands)]:
        assert "``" not in text
        assert "usage: knowledge" in text


def help_of(capsys: pytest.CaptureFixture[str], *command: str) -> str:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args([*command, "--help"])
    assert exited.value.code == 0
    return capsys.readouterr().out
