"""``knowledge up``: services, a code server, the Dagster webserver and daemon, API, workers.

Services (``services/``) are started first and stopped last: PostgreSQL (embedded, or served over
TCP with ``listen``), Valkey unless ``KNOWLEDGE_BROKER_URL`` names a broker, SeaweedFS with
``listen``. Then the processes, each in a session of its own; ``workers`` local run workers
(``knowledge worker``) among them. ``$KNOWLEDGE_HOME/cluster.env`` tells other hosts how to join.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import psutil

from knowledge_assets.db.engine import database_url, engine_for
from knowledge_assets.db.migrate import ensure_migrated
from knowledge_assets.demo import corpus_files
from knowledge_assets.files import write_atomic
from knowledge_assets.instance.home import PROJECT_ROOT, write_dagster_home
from knowledge_assets.pipeline.batches import BatchStorage
from knowledge_assets.pipeline.object_store import storage_root
from knowledge_assets.platform import code_server
from knowledge_assets.platform.api_token import ApiToken, ensure_api_token
from knowledge_assets.platform.services.base import StartReport
from knowledge_assets.platform.services.cluster import (
    CLUSTER_FILE,
    PIPELINE_VARIABLES,
    SERVICE_VARIABLES,
    ServiceSet,
    write_cluster_env,
)
from knowledge_assets.settings import Settings

_log = logging.getLogger(__name__)


@dataclass
class DemoDrop:
    """What ``--demo`` did: demo files dropped into the inbox, and those submitted before."""

    dropped: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)


class Platform:
    """Starts every process of the platform and stops all of them on Ctrl-C or SIGTERM."""

    def __init__(
        self,
        settings: Settings,
        *,
        demo: bool = False,
        services: tuple[str, ...] = ("webserver", "daemon", "api", "worker"),
        workers: int = 1,
        worker_concurrency: int = 3,
        listen: str | None = None,
        advertise: str | None = None,
    ) -> None:
        self.settings = settings
        self.demo = demo
        self.services = services
        self.workers = workers if "worker" in services else 0
        self.worker_concurrency = worker_concurrency
        self.listen = listen
        wildcard = listen in ("0.0.0.0", "::", "")
        self.advertise = advertise or (socket.gethostname() if wildcard else listen)
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self._stopping = False
        self.api_token: ApiToken | None = None
        self.demo_drop: DemoDrop | None = None
        self.backing = ServiceSet(
            settings.home,
            bind=listen or "127.0.0.1",
            broker=settings.broker_url is None,
            database=listen is not None and settings.database_url is None,
            storage=listen is not None and settings.storage_url is None,
        )
        self.started: dict[str, StartReport] = {}

    def environment(self, url: str) -> dict[str, str]:
        """What every child process needs to find the same state."""
        env = dict(os.environ)
        env.update(self.backing.environment())
        env.update(
            DAGSTER_HOME=str(self.settings.dagster_home),
            KNOWLEDGE_HOME=str(self.settings.home),
            KNOWLEDGE_DATABASE_URL=url,
        )
        env.setdefault("KNOWLEDGE_STORAGE_URL", self.settings.storage_location)
        return env

    def prepare(self) -> dict[str, str]:
        """Services up, database migrated, Dagster's tables created, ``DAGSTER_HOME`` written."""
        self.started = self.backing.start()
        served = self.backing.postgres
        url = served.url() if served is not None else database_url(self.settings)
        ensure_migrated(engine_for(url))
        write_dagster_home(self.settings)
        env = self.environment(url)
        self.write_cluster_env(env)
        # Dagster's tables and the run retry cursors, once, in a process of their own (this one
        # stays free of Dagster's imports).
        subprocess.run(
            [sys.executable, "-m", "knowledge_assets.instance.home"], env=env, check=True
        )
        self.settings.inbox_dir.mkdir(parents=True, exist_ok=True)
        return env

    def start(self) -> None:
        """Start the code server, the webserver, the daemon, the API and the workers (the demo too).

        The webserver and the daemon load our code from the one code server started here (see
        ``code_server.py``): they never start or swap code servers of their own.
        """
        env = self.prepare()
        bin_dir = Path(sys.executable).parent
        workspace = str(self.start_code_server(env))
        if "webserver" in self.services:
            self._spawn(
                "webserver",
                [str(bin_dir / "dagster-webserver"), "-h", self.settings.ui_host,
                 "-p", str(self.settings.ui_port), "-w", workspace],
                env,
            )  # fmt: skip
        if "daemon" in self.services:
            self._spawn("daemon", [str(bin_dir / "dagster-daemon"), "run", "-w", workspace], env)
        if "api" in self.services:
            self.api_token = ensure_api_token(self.settings)
            api_env = dict(
                env,
                KNOWLEDGE_API_TOKEN=self.api_token.value,
                KNOWLEDGE_API_HOST=self.settings.api_host,
                KNOWLEDGE_API_PORT=str(self.settings.api_port),
            )
            self._spawn("api", [sys.executable, "-m", "api"], api_env)
        for number in range(1, self.workers + 1):
            worker = [sys.executable, "-m", "knowledge_assets.cli", "worker"]
            options = ["--name", f"local-{number}", "--concurrency", str(self.worker_concurrency)]
            self._spawn(f"worker-{number}", [*worker, *options], env)
        if self.demo:
            self.drop_demo()

    def write_cluster_env(self, env: dict[str, str]) -> None:
        """``$KNOWLEDGE_HOME/cluster.env``: the URLs (as other hosts reach them) and pipeline."""
        names = (*SERVICE_VARIABLES, *PIPELINE_VARIABLES)
        variables = {k: env[k] for k in names if k in env}
        variables.update(self.backing.environment(self.advertise))
        write_cluster_env(self.settings.home / CLUSTER_FILE, variables)

    def start_code_server(self, env: dict[str, str]) -> Path:
        """Start the platform's code server, wait until it serves; the workspace that names it."""
        port = code_server.free_port()
        self._spawn("code-server", code_server.code_server_command(port), env)
        process = self.children["code-server"]
        code_server.wait_until_serving(port, alive=lambda: process.poll() is None)
        return code_server.write_workspace(self.settings.dagster_home, port)

    def drop_demo(self) -> DemoDrop:
        """Copy the demo files not submitted before into the inbox; say what was done.

        A file counts as submitted when its bytes are in batch storage (an earlier start dropped
        it and the inbox staged it) or it is still waiting in the inbox, so a restart drops
        nothing again. Files are written as .part, then renamed: never half-read.
        """
        storage = BatchStorage(storage_root(self.settings))
        drop = DemoDrop()
        for source in corpus_files():
            data, target = source.read_bytes(), self.settings.inbox_dir / source.name
            if storage.holds(data) or (target.is_file() and target.read_bytes() == data):
                drop.kept.append(source.name)
            else:
                write_atomic(target, data, mode=0o644)
                drop.dropped.append(source.name)
        self.demo_drop = drop
        return drop

    def wait(self) -> int:
        """Block until a signal arrives or a child dies; then stop everything."""
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._on_signal)
        try:
            while not self._stopping:
                for name, child in self.children.items():
                    if child.poll() is not None:
                        _log.error(
                            "%s exited with %s; stopping the platform", name, child.returncode
                        )
                        return 1
                for service in self.backing.services:
                    if not service.alive():
                        _log.error("%s stopped; stopping the platform", service.name)
                        return 1
                time.sleep(0.5)
            return 0
        finally:
            self.stop()

    def stop(self) -> None:
        """Terminate every child (and its process group), then release the database.

        Descendants are listed first: a code server that left its parent's process group would
        otherwise outlive the platform until its own heartbeat timeout.
        """
        descendants = _descendants(self.children.values())
        for child in self.children.values():
            _signal_group(child, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for child in self.children.values():
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(child, signal.SIGKILL)
                child.wait()
        self.children.clear()
        _, survivors = psutil.wait_procs(descendants, timeout=max(0.1, deadline - time.monotonic()))
        for survivor in survivors:
            with contextlib.suppress(psutil.NoSuchProcess):
                survivor.kill()
        self.backing.stop()
        from knowledge_assets.db.engine import stop_embedded

        stop_embedded()

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        log_dir = self.settings.home / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        log = (log_dir / f"{name}.log").open("ab")
        # Own session: a signal to the platform reaches children only through stop(), in order.
        self.children[name] = subprocess.Popen(
            argv, env=env, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stopping = True


def _descendants(children: Iterable[subprocess.Popen[bytes]]) -> list[psutil.Process]:
    found: list[psutil.Process] = []
    for child in children:
        with contextlib.suppress(psutil.NoSuchProcess):
            found += psutil.Process(child.pid).children(recursive=True)
    return found


def _signal_group(child: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signum)
