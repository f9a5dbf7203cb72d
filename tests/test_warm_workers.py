"""Warm run workers: the daemon forks them from a pre-warmed server, and falls back when it can't.

The fork server is the one place that leans on Dagster internals (``ExecuteRunArgs`` and the
``dagster api execute_run`` command run inside a forked child), so these tests pin that it still
works with the pinned Dagster: a real daemon, a real fork server, real runs on PostgreSQL.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import psutil
import pytest
import yaml

from knowledge_assets.demo import corpus_files
from knowledge_assets.failpoints import ALWAYS, arm, fired
from knowledge_assets.instance import forkserver
from knowledge_assets.instance.forkserver import (
    ForkServerClient,
    ForkServerError,
    _source_mtimes,
    _stale,
)
from knowledge_assets.instance.home import INSTANCE_CONFIG
from knowledge_assets.instance.launcher import FORKED_TAG
from knowledge_assets.instance.liveness import run_worker_pid
from knowledge_assets.orchestration.orchestrator import Orchestrator
from knowledge_assets.orchestration.state import BatchState
from knowledge_assets.pipeline.models import DocumentInput
from knowledge_assets.settings import Settings
from tests.durability import platform_instance
from tests.processes import DagsterDaemon

FORK_SERVER_MODULE = forkserver.__name__  # in the fork server's command line
PRELOAD = yaml.safe_load(INSTANCE_CONFIG.read_text())["run_launcher"]["config"]["preload"]


@pytest.fixture
def orchestrator(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Orchestrator]:
    monkeypatch.setenv("DAGSTER_HOME", str(settings.dagster_home))
    with Orchestrator.for_settings(settings) as orchestrator:
        yield orchestrator


def demo_inputs() -> list[DocumentInput]:
    return [DocumentInput(name=p.name, data=p.read_bytes()) for p in corpus_files()]


def fork_servers(daemon: DagsterDaemon) -> list[psutil.Process]:
    found = []
    for process in daemon.descendants():
        try:
            if FORK_SERVER_MODULE in " ".join(process.cmdline()):
                found.append(process)
        except psutil.Error:
            continue  # a finished worker not reaped yet
    return found


def only_run(orchestrator: Orchestrator, batch_id: str) -> tuple[dg.DagsterRun, object]:
    """The batch's one run, and the PID its worker recorded."""
    (run_id,) = orchestrator.poll(batch_id).runs
    with platform_instance(orchestrator.settings) as instance:
        run = instance.get_run_by_id(run_id)
        assert run is not None
        return run, run_worker_pid(instance, run_id)


def test_the_daemon_forks_run_workers_from_its_warm_server(
    settings: Settings, orchestrator: Orchestrator
) -> None:
    daemon = DagsterDaemon(settings).start()
    try:
        batch_id = orchestrator.submit(demo_inputs()).batch_id
        done = orchestrator.wait(batch_id, timeout_s=180)
        assert done.state == BatchState.COMPLETE, done
        (server,) = fork_servers(daemon)
        run, recorded = only_run(orchestrator, batch_id)
        forked = json.loads(run.tags[FORKED_TAG])
        assert isinstance(recorded, tuple) and recorded[0] == forked["pid"], "forked child ran it"
        assert forked["pid"] != server.pid
    finally:
        daemon.stop()


def test_a_fork_server_that_dies_warming_up_leaves_runs_to_cold_workers(
    settings: Settings, orchestrator: Orchestrator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    failpoints = tmp_path / "failpoints"
    arm(failpoints, "forkserver.serve", ALWAYS)
    monkeypatch.setenv("KNOWLEDGE_FAILPOINTS", str(failpoints))
    daemon = DagsterDaemon(settings).start()
    try:
        batch_id = orchestrator.submit(demo_inputs()).batch_id
        done = orchestrator.wait(batch_id, timeout_s=180)
        assert done.state == BatchState.COMPLETE, done
        assert fired(failpoints, "forkserver.serve")
        run, recorded = only_run(orchestrator, batch_id)
        assert FORKED_TAG not in run.tags
        assert recorded is not None
    finally:
        daemon.stop()


def test_the_client_restarts_a_killed_fork_server() -> None:
    client = ForkServerClient(PRELOAD)
    try:
        with pytest.raises(ForkServerError, match="not a run command"):
            client.fork(["api", "grpc"])
        first = client.pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        psutil.Process(first).wait(timeout=10)
        with pytest.raises(ForkServerError, match="not a run command"):
            client.fork(["api", "grpc"])
        assert client.pid not in (None, first)
    finally:
        client.close()
    assert client.pid is None


def test_edited_source_makes_the_server_stale(tmp_path: Path) -> None:
    module = tmp_path / "module.py"
    module.write_text("x = 1\n", encoding="utf-8")
    mtimes = {str(module): module.stat().st_mtime}
    assert not _stale(mtimes)
    later = time.time() + 5
    os.utime(module, (later, later))
    assert _stale(mtimes)
    module.unlink()
    assert _stale(mtimes)
    assert _source_mtimes("knowledge_assets"), "the test process has our modules loaded"
