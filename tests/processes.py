"""Platform processes that tests start, kill and stop by their own ids."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
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
    command: Sequence[str], env: Mapping[str, str], log_path: Path, cwd: Path = PROJECT_ROOT
) -> subprocess.Popen[bytes]:
    """Start ``command`` (from ``cwd``) in a session of its own, its output in ``log_path``.

    Its own session keeps the terminal's Ctrl-C away from it and makes its pid the id of its
    process group, so a test stops exactly what it started, by that pid, never by a name.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        return subprocess.Popen(
            list(command),
            env=dict(env),
            cwd=cwd,
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


class Worker:
    """``knowledge worker`` (a Celery worker hosting runs), in its own session.

    It reads the test's ``KNOWLEDGE_*`` environment when started (database, broker, extractor,
    LLM address, chunk size), so a worker serves exactly one test's settings.
    """

    def __init__(
        self,
        env: Mapping[str, str],
        log_path: Path,
        *,
        name: str = "test",
        args: Sequence[str] = (),
        prefix: Sequence[str] = (),
        concurrency: int = 3,
        cwd: Path = PROJECT_ROOT,
    ) -> None:
        self.env = dict(env)
        self.log_path = log_path
        self.cwd = cwd
        self.name = name
        self.args = [*args, "--concurrency", str(concurrency), "--loglevel", "INFO"]
        self.prefix = list(prefix)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Worker:
        """Start it; runs wait in the broker until it is warm."""
        command = [*self.prefix, sys.executable, "-m", "knowledge_assets.cli", "worker"]
        argv = [*command, "--name", self.name, *self.args]
        self.process = spawn(argv, self.env, self.log_path, self.cwd)
        return self

    @property
    def node(self) -> str:
        """The node name runs record (``name@host``)."""
        return f"{self.name}@{socket.gethostname()}"

    def wait_ready(self, timeout: float = 120) -> Worker:
        """Until Celery says the worker is ready (warmed up, consuming)."""

        def ready() -> bool:
            assert self.process is not None and self.process.poll() is None, self.log()
            return " ready." in self.log()

        wait_until(ready, timeout, every=0.2)
        return self

    def log(self) -> str:
        """Everything the worker wrote."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def signal_group(self, signum: int) -> None:
        """Send ``signum`` to the worker's whole process group (main process and pool)."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signum)

    def kill(self) -> None:
        """kill -9 of the worker's whole process group, as a lost host would."""
        self.signal_group(signal.SIGKILL)
        if self.process is not None:
            self.process.wait()

    def stop(self) -> None:
        """SIGTERM (Celery's warm shutdown); SIGKILL the group after 20 s."""
        if self.process is None:
            return
        self.signal_group(signal.SIGCONT)
        if self.process.poll() is None:
            terminate(self.process, 20, group=True)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)  # pool children left by a killed main


class DagsterDaemon:
    """A real ``dagster-daemon run`` and a ``knowledge worker`` for the test's instance.

    Both in sessions of their own, with the test's environment: the daemon queues, launches and
    monitors the runs, the worker executes them.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = settings.home / "logs" / "daemon.log"
        self.worker: Worker | None = None

    def start(self) -> DagsterDaemon:
        """Start the daemon and a worker with this test's environment."""
        home = self.settings.dagster_home
        prepare_instance(self.settings)  # as `knowledge up` does: tables and retry cursors first
        env = dict(os.environ, DAGSTER_HOME=str(home))
        daemon = str(Path(sys.executable).parent / "dagster-daemon")
        command = [daemon, "run", "-w", str(PROJECT_ROOT / "workspace.yaml")]
        self.process = spawn(command, env, self.log_path)
        self.worker = Worker(env, self.settings.home / "logs" / "worker.log").start()
        return self

    def descendants(self) -> list[psutil.Process]:
        """Every live process the daemon started (its code servers)."""
        if self.process is None:
            return []
        try:
            return psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def kill_all(self) -> None:
        """kill -9 the daemon, the worker and everything they started, as a host crash would."""
        if self.process is None:
            return
        victims = [*self.descendants()]
        os.killpg(self.process.pid, signal.SIGKILL)
        for victim in victims:
            with contextlib.suppress(psutil.NoSuchProcess):
                victim.kill()
        self.process.wait()
        psutil.wait_procs(victims, timeout=10)
        if self.worker is not None:
            self.worker.kill()

    def stop(self) -> None:
        """Stop the worker, the daemon and its children; kill what does not stop in 15 s."""
        if self.worker is not None:
            self.worker.stop()
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
        """Start the platform with this test's environment (and a Valkey of its own)."""
        # A free API port too: `knowledge up` starts the API, and 8000 may be taken on this host.
        env = dict(
            os.environ, KNOWLEDGE_UI_PORT=str(self.ui_port), KNOWLEDGE_API_PORT=str(free_port())
        )
        env.pop("KNOWLEDGE_BROKER_URL", None)  # `knowledge up` starts Valkey, as for a user
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
