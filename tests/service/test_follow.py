"""``knowledge submit --follow`` and ``knowledge follow``: events read through the Orchestrator.

The follower needs no API server: only the platform's database under ``KNOWLEDGE_HOME`` and a
daemon that runs the batch. Its printed lines are compared with a replay of the finished batch,
which shows every event exactly once, also when PostgreSQL restarted while it was following.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from knowledge_assets.db.embedded import EmbeddedPostgres
from knowledge_assets.db.engine import engine_for
from knowledge_assets.settings import Settings
from tests.conftest import PROJECT_ROOT
from tests.corpus import synthetic_documents
from tests.durability import llm_environment
from tests.fakes.openai_server import FakeOpenAI
from tests.processes import DagsterDaemon, terminate, wait_until

PRINTED = ("state", "stage", "progress", "retry", "error", "complete")


def knowledge(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "knowledge_assets.cli", *args],
        env=dict(os.environ),
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class Follower:
    """A ``knowledge`` command that follows a batch, in its own session, stdout to a file."""

    def __init__(self, out: Path, *args: str) -> None:
        self.out, self.err = out, out.with_suffix(".err")
        with self.out.open("w") as stdout, self.err.open("w") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "knowledge_assets.cli", *args],
                env=dict(os.environ),
                cwd=PROJECT_ROOT,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,
            )

    def text(self) -> str:
        return self.out.read_text()

    def alive(self) -> bool:
        assert self.process.poll() is None, f"follower exited: {self.text()}{self.err.read_text()}"
        return True

    def wait(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"follower still running: {self.text()}") from None

    def stop(self) -> None:
        terminate(self.process, 10)


def events(lines: list[str]) -> list[tuple[str, dict[str, Any]]]:
    """The event lines a follower printed: (kind, JSON detail)."""
    parsed = []
    for line in lines:
        kind, _, rest = line.partition(" ")
        if kind in PRINTED:
            parsed.append((kind, json.loads(rest)))
    return parsed


@pytest.fixture
def daemon(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[DagsterDaemon]:
    """A daemon on the test's database, and nothing else: no API server."""
    monkeypatch.setenv("DAGSTER_HOME", str(settings.dagster_home))
    running = DagsterDaemon(settings).start()
    try:
        yield running
    finally:
        running.stop()


def test_submit_follow_prints_every_state_and_stage_to_complete_without_an_api(
    daemon: DagsterDaemon, tmp_path: Path
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "follow.txt").write_text(
        "Marta Lindqvist moved the weaving school from Kiruna to Umea in June.", encoding="utf-8"
    )
    follower = Follower(tmp_path / "follow.out", "submit", str(folder), "--follow")
    try:
        assert follower.wait(timeout=300) == 0, follower.text() + follower.err.read_text()
    finally:
        follower.stop()
    lines = follower.text().splitlines()
    printed = events(lines)
    states = [detail["state"] for kind, detail in printed if kind == "state"]
    assert states == [
        "pending", "preprocessing", "extracting", "resolving", "validating", "ingesting",
        "complete",
    ]  # fmt: skip
    finished = [
        detail["stage"]
        for kind, detail in printed
        if kind == "stage" and detail["status"] == "finished"
    ]
    assert finished == [
        "documents", "chunks", "extractions", "resolved_entities", "validated_graph",
        "ingested_graph",
    ]  # fmt: skip
    assert printed[-1] == ("complete", {"state": "complete"})
    submitted = next(line for line in lines if line.startswith("batch "))
    assert submitted.endswith(": pending")
    assert lines[-1] == submitted.replace(": pending", ": complete")


@pytest.fixture
def slow_platform(
    own_server: EmbeddedPostgres,
    fake_llm: FakeOpenAI,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    broker_url: str,
) -> Iterator[DagsterDaemon]:
    """A daemon on a PostgreSQL server the test can restart, extracting with a slow fake LLM.

    Slow enough (0.5 s an answer: about 6 s for the 89 chunks at 8 in flight) that the restart
    lands mid-extraction however quickly the warm worker picks the run up.
    """
    fake_llm.default_delay = 0.5
    url = own_server.start()
    for key, value in llm_environment(fake_llm).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("KNOWLEDGE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KNOWLEDGE_DATABASE_URL", url)
    settings = Settings()
    monkeypatch.setenv("DAGSTER_HOME", str(settings.dagster_home))
    daemon = DagsterDaemon(settings).start()
    try:
        yield daemon
    finally:
        daemon.stop()
        engine_for(url).dispose()


def test_follow_survives_a_database_restart_and_shows_each_event_once(
    slow_platform: DagsterDaemon,
    own_server: EmbeddedPostgres,
    fake_llm: FakeOpenAI,
    tmp_path: Path,
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    for item in synthetic_documents(30):
        (folder / item.name).write_bytes(item.data)
    submitted = knowledge("submit", str(folder), "--json")
    assert submitted.returncode == 0, submitted.stderr
    batch_id = json.loads(submitted.stdout.splitlines()[-1])["batch_id"]

    follower = Follower(tmp_path / "live.out", "follow", batch_id)
    try:
        # Mid-extraction: the LLM has answered some chunks, the follower has shown the stage.
        wait_until(lambda: follower.alive() and len(fake_llm.requests) >= 10, 240, every=0.05)
        wait_until(lambda: follower.alive() and '"extractions"' in follower.text(), 60, every=0.05)
        calls_before = len(fake_llm.requests)
        shown_before = len(follower.text().splitlines())
        postmaster = own_server.pgdata / "postmaster.pid"
        old_postmaster = postmaster.read_text().split()[0]
        own_server.restart()
        assert postmaster.read_text().split()[0] != old_postmaster
        assert follower.alive()
        assert follower.wait(timeout=300) == 0, follower.text() + follower.err.read_text()
    finally:
        follower.stop()
    live = follower.text().splitlines()
    assert len(fake_llm.requests) > calls_before  # extraction went on after the restart
    assert len(live) > shown_before  # and the follower showed it
    assert live[-1] == f"batch {batch_id}: complete"

    replay = knowledge("follow", batch_id)
    assert replay.returncode == 0, replay.stderr
    assert live == replay.stdout.splitlines()


@pytest.mark.parametrize("batch_id", ["b0000000000000000", "UNKNOWN"])
def test_follow_of_an_unknown_batch_is_a_one_line_error(settings: Settings, batch_id: str) -> None:
    result = knowledge("follow", batch_id, timeout=120)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"knowledge: error: no batch {batch_id!r} under {settings.home}"
    ]
