"""``knowledge up``: services, a code server, the Dagster webserver and daemon, the API, workers.

Every part is a ``Service`` (``services/supervised.py``), started in order and stopped in reverse:
first the backing services (PostgreSQL, embedded or served over TCP with ``listen``; Valkey unless
``KNOWLEDGE_BROKER_URL`` names a broker; SeaweedFS with ``listen``), then the code server, the
webserver, the daemon, the API and ``workers`` local run workers (``knowledge worker``). The
supervisor checks them twice a second; a part that died is restarted after a backoff that doubles,
and one that keeps dying (more restarts than its policy allows, or dead for ``GIVE_UP_AFTER_S``)
stops the whole platform with a non-zero exit and a message that names it: never a platform that
runs on half alive. ``$KNOWLEDGE_HOME/cluster.env`` tells other hosts how to join.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from knowledge_assets.db.engine import database_url, embedded_server, engine_for
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
from knowledge_assets.platform.services.supervised import (
    ChildProcess,
    EmbeddedDatabase,
    ServerService,
    Service,
)
from knowledge_assets.settings import Settings

_log = logging.getLogger(__name__)


@dataclass
class DemoDrop:
    """What ``--demo`` did: demo files dropped into the inbox, and those submitted before."""

    dropped: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)


# A part dead this long without recovering stops the platform, however few restarts it took.
GIVE_UP_AFTER_S = 25.0
CHECK_EVERY_S = 0.5


class PlatformFailed(RuntimeError):
    """A part of the platform could not be kept alive; the message says which and why."""


@dataclass
class _Watch:
    """What the supervisor remembers about one service."""

    restarts: deque[float] = field(default_factory=deque)
    dead_since: float | None = None
    restart_at: float | None = None


class Supervisor:
    """Starts services in order, restarts the dead ones, stops all in reverse order."""

    def __init__(
        self, services: Sequence[Service], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.services = list(services)
        self.clock = clock
        self._watch = {service.name: _Watch() for service in self.services}

    def start(self) -> None:
        """Start every service, in the order given."""
        for service in self.services:
            service.start()

    def check(self) -> None:
        """One look at every service; raise ``PlatformFailed`` when one is past saving."""
        for service in self.services:
            self._check(service, self._watch[service.name], self.clock())

    def stop(self) -> None:
        """Stop every service, the last started first."""
        for service in reversed(self.services):
            service.stop()

    def _check(self, service: Service, watch: _Watch, now: float) -> None:
        if watch.restart_at is None:
            if service.alive():
                watch.dead_since = None
                return
            self._schedule(service, watch, now)
        elif now >= watch.restart_at:
            watch.restart_at = None
            watch.restarts.append(now)
            try:
                service.stop()
                service.start()
                _log.warning("%s restarted", service.name)
            except Exception as exc:  # the next check sees it dead and backs off further
                _log.error("%s did not restart: %s", service.name, exc)

    def _schedule(self, service: Service, watch: _Watch, now: float) -> None:
        policy = service.policy
        while watch.restarts and now - watch.restarts[0] > policy.window_s:
            watch.restarts.popleft()
        watch.dead_since = watch.dead_since if watch.dead_since is not None else now
        if len(watch.restarts) >= policy.max_restarts:
            raise PlatformFailed(
                f"{service.name} died again after {len(watch.restarts)} restarts within "
                f"{policy.window_s:.0f} s"
            )
        if now - watch.dead_since > GIVE_UP_AFTER_S:
            raise PlatformFailed(
                f"{service.name} has been down for {now - watch.dead_since:.0f} s "
                "and did not come back"
            )
        delay = policy.backoff_s(len(watch.restarts) + 1)
        watch.restart_at = now + delay
        _log.error("%s is down; restarting it in %.1f s", service.name, delay)


class Platform:
    """The services of ``knowledge up`` under one supervisor; Ctrl-C or SIGTERM stops them."""

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
        self.supervisor = Supervisor([])
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

    @property
    def children(self) -> dict[str, subprocess.Popen[bytes]]:
        """The running child processes by service name."""
        return {
            s.name: s.process
            for s in self.supervisor.services
            if isinstance(s, ChildProcess) and s.process is not None
        }

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
        """Start every service in order (and drop the demo); on a failed start, stop them all.

        The webserver and the daemon load our code from the one code server started here (see
        ``code_server.py``): they never start or swap code servers of their own.
        """
        env = self.prepare()
        self.supervisor = Supervisor(self._services(env))
        try:
            self.supervisor.start()
        except BaseException:
            self.stop()
            raise
        if self.demo:
            self.drop_demo()

    def _services(self, env: dict[str, str]) -> list[Service]:
        services = self._backing_services()
        port = code_server.free_port()
        log_path = self._log_path("code-server")
        services.append(code_server.CodeServer(port, env, cwd=PROJECT_ROOT, log_path=log_path))
        workspace = str(code_server.write_workspace(self.settings.dagster_home, port))
        bin_dir = Path(sys.executable).parent
        if "webserver" in self.services:
            services.append(self._child(
                "webserver",
                [str(bin_dir / "dagster-webserver"), "-h", self.settings.ui_host,
                 "-p", str(self.settings.ui_port), "-w", workspace],
                env,
            ))  # fmt: skip
        if "daemon" in self.services:
            daemon = [str(bin_dir / "dagster-daemon"), "run", "-w", workspace]
            services.append(self._child("daemon", daemon, env))
        if "api" in self.services:
            services.append(self._api(env))
        return services + self._workers(env)

    def _backing_services(self) -> list[Service]:
        """The database, broker and object store, first to start and last to stop."""
        services: list[Service] = [ServerService(s) for s in self.backing.services]
        server = embedded_server(self.settings) if self.backing.postgres is None else None
        if server is not None:
            services.insert(0, EmbeddedDatabase(server))
        return services

    def _api(self, env: dict[str, str]) -> ChildProcess:
        self.api_token = ensure_api_token(self.settings)
        api_env = dict(
            env,
            KNOWLEDGE_API_TOKEN=self.api_token.value,
            KNOWLEDGE_API_HOST=self.settings.api_host,
            KNOWLEDGE_API_PORT=str(self.settings.api_port),
        )
        return self._child("api", [sys.executable, "-m", "api"], api_env)

    def _workers(self, env: dict[str, str]) -> list[Service]:
        """Local run workers; a dead one is restarted (its run's lease lapses, the run retries)."""
        worker = [sys.executable, "-m", "knowledge_assets.cli", "worker"]
        found: list[Service] = []
        for number in range(1, self.workers + 1):
            options = ["--name", f"local-{number}", "--concurrency", str(self.worker_concurrency)]
            found.append(self._child(f"worker-{number}", [*worker, *options], env))
        return found

    def _child(self, name: str, argv: list[str], env: dict[str, str]) -> ChildProcess:
        return ChildProcess(name, argv, env, cwd=PROJECT_ROOT, log_path=self._log_path(name))

    def _log_path(self, name: str) -> Path:
        return self.settings.home / "logs" / f"{name}.log"

    def write_cluster_env(self, env: dict[str, str]) -> None:
        """``$KNOWLEDGE_HOME/cluster.env``: the URLs (as other hosts reach them) and pipeline."""
        names = (*SERVICE_VARIABLES, *PIPELINE_VARIABLES)
        variables = {k: env[k] for k in names if k in env}
        variables.update(self.backing.environment(self.advertise))
        write_cluster_env(self.settings.home / CLUSTER_FILE, variables)

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
        """Supervise until a signal arrives (0) or a part cannot be kept alive (1); then stop."""
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._on_signal)
        try:
            while not self._stopping:
                self.supervisor.check()
                time.sleep(CHECK_EVERY_S)
            return 0
        except PlatformFailed as failure:
            # logging's stderr handler (cli/main.py): the message reaches the terminal.
            _log.error(
                "knowledge up: %s; stopping the platform (logs in %s)",
                failure,
                self.settings.home / "logs",
            )
            return 1
        finally:
            self.stop()

    def stop(self) -> None:
        """Stop every service (each its whole process tree; workers first, services last).

        Then release this process's handle on the embedded database.
        """
        self.supervisor.stop()
        self.backing.stop()  # services started by ``prepare`` before the supervisor took them
        from knowledge_assets.db.engine import stop_embedded

        stop_embedded()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stopping = True
