"""`knowledge up` runs one code server: the daemon's workspace reloads swap and log nothing.

Dagster's daemon reloads its workspace every 60 s (``RELOAD_WORKSPACE_INTERVAL``, fixed). With a
workspace that names a module it starts a new code server each time and the old one exits with
"No heartbeat received in 20 seconds, shutting down". With the platform's workspace it
reconnects to the code server ``knowledge up`` started. This test lets a real platform reload
twice: a run requested and a from-failure retry decided around the first reload both happen,
the code server is the one started at the beginning, and no log has the warning.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from knowledge_assets.failpoints import ENVIRONMENT, arm, fired
from knowledge_assets.orchestration.orchestrator import Orchestrator
from knowledge_assets.orchestration.state import BatchState
from knowledge_assets.settings import Settings
from tests.conftest import free_port
from tests.corpus import synthetic_documents
from tests.processes import KnowledgeUp, wait_until

WARNING = "No heartbeat received"
READY = "Instance is configured with the following daemons"
RELOAD_S = 65  # the daemon checks every 5 s whether 60 s have passed since its loop started


@pytest.fixture
def platform(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[KnowledgeUp, Path]]:
    failpoints = tmp_path / "failpoints"
    failpoints.mkdir()
    monkeypatch.setenv(ENVIRONMENT, str(failpoints))
    monkeypatch.setenv("DAGSTER_HOME", str(settings.dagster_home))
    up = KnowledgeUp(Settings(), ui_port=free_port()).start()
    try:
        yield up, failpoints
    finally:
        up.stop()


def test_runs_and_retries_at_the_daemons_reload_and_an_idle_platform_is_quiet(
    platform: tuple[KnowledgeUp, Path], settings: Settings
) -> None:
    up, failpoints = platform
    logs = settings.home / "logs"
    wait_until(lambda: READY in _read(logs / "daemon.log"), 180)
    loop_started = time.monotonic()
    server = _code_server(up)
    with Orchestrator.for_settings(Settings()) as orchestrator:
        # A worker killed at its first stage a few seconds before the reload: run monitoring
        # fails the run and the retry is decided around the reload.
        _sleep_until(loop_started + RELOAD_S - 8)
        arm(failpoints, "documents.start")
        crashed = orchestrator.submit(synthetic_documents(2)).batch_id
        # A run requested at the reload.
        _sleep_until(loop_started + RELOAD_S - 1)
        requested = orchestrator.submit(synthetic_documents(3)[2:]).batch_id
        done = [orchestrator.wait(b, timeout_s=240) for b in (crashed, requested)]
    assert fired(failpoints, "documents.start")
    assert [d.state for d in done] == [BatchState.COMPLETE, BatchState.COMPLETE], done
    assert sorted(len(d.runs) for d in done) == [1, 2]  # one crashed and was retried

    _sleep_until(loop_started + 2 * RELOAD_S + 10)  # a second reload, with nothing to do
    assert _code_server(up).pid == server.pid and server.is_running()
    for name in ("daemon.log", "webserver.log", "code-server.log"):
        assert WARNING not in _read(logs / name), name
    daemon = next(p for p in up.tree() if "dagster-daemon" in _cmd(p))
    assert not [p for p in daemon.children(recursive=True) if "api grpc" in _cmd(p)]


def _code_server(up: KnowledgeUp) -> psutil.Process:
    (server,) = [p for p in up.tree() if "code-server start" in _cmd(p)]
    return server


def _cmd(process: psutil.Process) -> str:
    try:
        return " ".join(process.cmdline())
    except psutil.Error:
        return ""


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""


def _sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.monotonic()))
