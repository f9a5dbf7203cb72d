"""``knowledge submit|status|cancel|resume`` as a user types them, against a running daemon."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from knowledge_assets.settings import Settings
from tests.corpus import synthetic_documents
from tests.durability import llm_environment
from tests.fakes.openai_server import FakeOpenAI
from tests.processes import DagsterDaemon


@pytest.fixture
def home(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    with FakeOpenAI() as fake:
        for key, value in llm_environment(fake).items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("DAGSTER_HOME", str(settings.dagster_home))
        yield Settings()


def knowledge(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "knowledge_assets.cli", *args],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=300,
    )


def write_folder(folder: Path, count: int) -> Path:
    folder.mkdir()
    for item in synthetic_documents(count):
        (folder / item.name).write_bytes(item.data)
    (folder / "empty.txt").write_bytes(b"")
    return folder


def test_submit_without_a_platform_says_so_and_the_batch_waits(
    home: Settings, tmp_path: Path
) -> None:
    folder = write_folder(tmp_path / "docs", 2)
    submitted = knowledge("submit", str(folder), "--json")
    assert submitted.returncode == 0, submitted.stderr
    assert "the platform is not running" in submitted.stdout
    last = json.loads(submitted.stdout.strip().splitlines()[-1])
    assert last["state"] == "pending" and last["batch_id"].startswith("b")

    status = knowledge("status", last["batch_id"], "--json")
    report = json.loads(status.stdout.strip().splitlines()[-1])
    assert report["state"] == "pending"
    assert {"batch_id", "state", "stage", "progress"} <= report.keys()
    refused = [d for d in report["documents"] if d["status"] == "refused"]
    assert [d["name"] for d in refused] == ["empty.txt"]

    listed = knowledge("batches", "--json")
    assert listed.returncode == 0, listed.stderr
    (batch,) = json.loads(listed.stdout.strip().splitlines()[-1])
    assert (batch["batch_id"], batch["state"]) == (last["batch_id"], "pending")
    assert batch["source"] == "cli"
    assert batch["submitted_at"] and batch["finished_at"] is None
    table = knowledge("batches").stdout.splitlines()
    assert table[0].split()[:3] == ["batch", "state", "source"]
    assert table[1].split()[:3] == [last["batch_id"], "pending", "cli"]
    assert "(+1 refused)" in table[1]


def test_submit_wait_status_cancel_resume_through_the_daemon(
    home: Settings, tmp_path: Path
) -> None:
    daemon = DagsterDaemon(home).start()
    try:
        folder = write_folder(tmp_path / "docs", 3)
        submitted = knowledge("submit", str(folder), "--wait", "--timeout", "240", "--json")
        assert submitted.returncode == 0, submitted.stderr
        final = json.loads(submitted.stdout.strip().splitlines()[-1])
        assert final["state"] == "complete"
        assert final["progress"]["documents"] == 3
        assert final["progress"]["chunks_done"] == final["progress"]["chunks_total"] > 0
        (run_id,) = final["runs"]
        assert final["workers"] == {run_id: f"test@{socket.gethostname()}"}  # the node that ran it

        again = knowledge("submit", str(folder), "--json")
        assert json.loads(again.stdout.strip().splitlines()[-1])["batch_id"] == final["batch_id"]

        human = knowledge("status", final["batch_id"])
        assert f"batch {final['batch_id']}: complete" in human.stdout
        assert f"{run_id}  test@{socket.gethostname()}" in human.stdout
        assert "refused      empty.txt:" in human.stdout

        for command in ("cancel", "resume"):
            done = knowledge(command, final["batch_id"], "--json")
            assert json.loads(done.stdout.strip().splitlines()[-1])["runs"] == final["runs"]
    finally:
        daemon.stop()


@pytest.mark.parametrize("command", ["status", "cancel", "resume"])
def test_an_unknown_batch_is_a_clear_error(home: Settings, command: str) -> None:
    result = knowledge(command, "b0000000000000000")
    assert result.returncode == 2
    assert "no batch 'b0000000000000000'" in result.stderr
    assert "Traceback" not in result.stderr
