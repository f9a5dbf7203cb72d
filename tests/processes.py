"""Platform processes that tests start, kill and stop by their own ids."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import psutil

from knowledge_assets.instance.home import prepare_instance
from knowledge_assets.settings import Settings
from tests.conftest import PROJECT_ROOT, free_port


def spawn(
    command: Sequence[str], env: Mapping[str, str], log_path: Path
) -> subprocess.Popen[bytes]:
    """Start ``command`` from the project root in a session of its own, its output in ``log_path``.

    Its own session keeps the terminal's Ctrl-C away from it and makes its pid the id of its
    process group, so a test stops exactly what it started, by that pid, never by a name.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        return subprocess.Popen(
            list(command),
            env=dict(env),
            cwd=PROJECT_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def terminate(process: subprocess.Popen[bytes], timeout: float, *, group: bool = False) -> None:
    """SIGTERM a spawned process (or its whole group) by its pid; SIGKILL it after ``timeout`` s.

    A process that has already exited is left alone: its pid may belong to another process now.
    """
    if process.poll() is not None:
        return
    send = os.killpg if group else os.kill
    send(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        send(process.pid, signal.SIGKILL)
        process.wait()


class DagsterDaemon:
    """A real ``dagster-daemon run`` for the test's instance, in its own session."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = settings.home / "logs" / "daemon.log"

    def start(self) -> DagsterDaemon:
        """Start the daemon with the environment of this test (home, database, DAGSTER_HOME)."""
        home = self.settings.dagster_home
        prepare_instance(self.settings)  # as `knowledge up` does: tables and retry cursors first
        env = dict(os.environ, DAGSTER_HOME=str(home))
        # dagster-daemon, started by our entry point so the warm fork server is up first
        daemon = [sys.executable, "-m", "knowledge_assets.instance.daemon"]
        command = [*daemon, "run", "-w", str(PROJECT_ROOT / "workspace.yaml")]
        self.process = spawn(command, env, self.log_path)
        return self

    def descendants(self) -> list[psutil.Process]:
        """Every live process the daemon started (code servers, run workers, step processes)."""
        if self.process is None:
            return []
        try:
            return psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def kill_all(self) -> None:
        """kill -9 the daemon and everything it started, as a host crash would."""
        if self.process is None:
            return
        victims = [*self.descendants()]
        os.killpg(self.process.pid, signal.SIGKILL)
        for victim in victims:
            with contextlib.suppress(psutil.NoSuchProcess):
                victim.kill()
        self.process.wait()
        psutil.wait_procs(victims, timeout=10)

    def stop(self) -> None:
        """Stop the daemon and its children; kill what does not stop in 15 s."""
        if self.process is None or self.process.poll() is not None:
            self._reap_orphans()
            return
        victims = self.descendants()
        terminate(self.process, 15, group=True)
        _, alive = psutil.wait_procs(victims, timeout=10)
        for process in alive:
            process.kill()
        self._reap_orphans()

    def _reap_orphans(self) -> None:
        # Run workers may outlive a killed daemon in a new session: find them by our home.
        # A PostgreSQL server the test restarted has that home too (pg_ctl passes the test's
        # environment on), but it is the test's database, not an orphan.
        home = str(self.settings.home)
        for process in psutil.process_iter(["environ", "name"]):
            try:
                environ = process.info.get("environ") or {}
            except psutil.Error:
                continue
            ours = environ.get("KNOWLEDGE_HOME") == home and process.pid != os.getpid()
            if ours and process.info.get("name") != "postgres":
                with contextlib.suppress(psutil.NoSuchProcess):
                    process.kill()


def wait_until(predicate: object, timeout: float, every: float = 0.2) -> object:
    """Poll ``predicate`` until it returns something truthy; fail the test at the deadline."""
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"condition not met within {timeout:.0f} s")


class KnowledgeUp:
    """``knowledge up`` as a user starts it (database, webserver, daemon), in its own session."""

    def __init__(self, settings: Settings, ui_port: int) -> None:
        self.settings = settings
        self.ui_port = ui_port
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> KnowledgeUp:
        """Start the platform with this test's environment."""
        # A free API port too: `knowledge up` starts the API, and 8000 may be taken on this host.
        env = dict(
            os.environ, KNOWLEDGE_UI_PORT=str(self.ui_port), KNOWLEDGE_API_PORT=str(free_port())
        )
        command = [sys.executable, "-m", "knowledge_assets.cli", "up"]
        self.process = spawn(command, env, self.settings.home / "logs" / "up.log")
        return self

    def tree(self) -> list[psutil.Process]:
        """``knowledge up`` and every process below it."""
        if self.process is None:
            return []
        try:
            root = psutil.Process(self.process.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def kill_all(self) -> list[str]:
        """kill -9 every platform process at once; return their names."""
        victims = self.tree()
        names = [_name(p) for p in victims]
        for victim in victims:
            with contextlib.suppress(psutil.NoSuchProcess):
                victim.kill()
        psutil.wait_procs(victims, timeout=10)
        if self.process is not None:
            self.process.wait()
        return names

    def stop(self) -> None:
        """SIGTERM (knowledge up stops its children), then make sure nothing is left."""
        if self.process is None:
            return
        victims = self.tree()
        terminate(self.process, 60)
        _, alive = psutil.wait_procs(victims, timeout=20)
        for process in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()


def _name(process: psutil.Process) -> str:
    try:
        return " ".join(process.cmdline())[:300]
    except psutil.Error:
        return str(process.pid)
