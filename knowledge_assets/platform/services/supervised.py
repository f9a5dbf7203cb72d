"""The parts ``knowledge up`` runs, each behind one small interface the supervisor drives.

A service can be started, asked whether it is alive, and stopped; restarting is stop, then start.
The embedded database, the servers run from wheels (``ServerService``: Valkey, SeaweedFS,
PostgreSQL over TCP) and every child process (code server, webserver, daemon, API, workers) are
services alike: the supervisor treats a dead broker exactly as a dead database.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import psutil

from knowledge_assets.db.embedded import EmbeddedPostgres
from knowledge_assets.platform.floodgate import FloodGate
from knowledge_assets.platform.services.base import ManagedService

__all__ = ["ChildProcess", "EmbeddedDatabase", "RestartPolicy", "ServerService", "Service"]


class Service(Protocol):
    """One supervised part of the platform."""

    name: str
    policy: RestartPolicy

    def start(self) -> None:
        """Start it (again); raise if it cannot start."""

    def alive(self) -> bool:
        """Whether it still runs."""

    def stop(self) -> None:
        """Stop it and everything it started; safe to call on a dead or stopped service."""


@dataclass(frozen=True)
class RestartPolicy:
    """Restarts with doubling backoff; more than ``max_restarts`` within ``window_s`` is fatal.

    The defaults give up about 15 s after the first death of a part that keeps dying, so
    ``knowledge up`` exits within 30 s rather than limp on half alive.
    """

    max_restarts: int = 5
    window_s: float = 120.0
    first_backoff_s: float = 0.5
    max_backoff_s: float = 8.0

    def backoff_s(self, attempt: int) -> float:
        """Seconds to wait before restart number ``attempt`` (1, 2, ...)."""
        return float(min(self.max_backoff_s, self.first_backoff_s * 2 ** (attempt - 1)))


class ChildProcess:
    """A command in its own session, its output through a ``FloodGate`` into a 0600 log file."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str],
        *,
        cwd: Path,
        log_path: Path,
        policy: RestartPolicy | None = None,
    ) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.cwd = cwd
        self.log_path = log_path
        self.policy = policy or RestartPolicy()
        self.process: subprocess.Popen[bytes] | None = None
        self._gate: FloodGate | None = None

    def start(self) -> None:
        """Spawn the command; its own session keeps terminal signals away from it."""
        self._gate = FloodGate(self.log_path)
        self.process = subprocess.Popen(
            self.argv,
            env=self.env,
            cwd=self.cwd,
            stdout=self._gate.writer,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._gate.start()

    def alive(self) -> bool:
        """Whether the process has not exited."""
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM its process group, SIGKILL what is left after ``timeout_s``."""
        process, self.process = self.process, None
        if process is not None:
            below = self.descendants_of(process)
            _signal_group(process, signal.SIGTERM)
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                process.wait()
            _, survivors = psutil.wait_procs(below, timeout=5)
            for survivor in survivors:
                with contextlib.suppress(psutil.NoSuchProcess):
                    survivor.kill()
        if self._gate is not None:
            self._gate.close()
            self._gate = None

    @staticmethod
    def descendants_of(process: subprocess.Popen[bytes]) -> list[psutil.Process]:
        """Listed before signalling: a child that left the group would otherwise be missed."""
        with contextlib.suppress(psutil.NoSuchProcess):
            return psutil.Process(process.pid).children(recursive=True)
        return []


class EmbeddedDatabase:
    """The embedded PostgreSQL; a dead postmaster is started again on the same socket."""

    def __init__(self, server: EmbeddedPostgres, policy: RestartPolicy | None = None) -> None:
        self.name = "database"
        self.server = server
        self.policy = policy or RestartPolicy()

    def start(self) -> None:
        """Start the server, or start it again after it died."""
        self.server.revive()

    def alive(self) -> bool:
        """Whether its postmaster still runs."""
        return self.server.alive()

    def stop(self) -> None:
        """Nothing to do: a dead postmaster needs no stopping.

        The platform releases the server itself when it exits (other processes may share it).
        """


class ServerService:
    """A server run from a wheel under ``KNOWLEDGE_HOME`` (``services/base.py``), supervised.

    Its data survives a restart (Valkey's append-only file, SeaweedFS's volumes, PostgreSQL's
    data directory), and its port and credentials are the home's, so clients reconnect as they
    would to a restarted remote service: Celery retries the broker, s3fs retries the store.
    """

    def __init__(self, server: ManagedService, policy: RestartPolicy | None = None) -> None:
        self.name = server.name
        self.server = server
        self.policy = policy or RestartPolicy()

    def start(self) -> None:
        """Start it, or adopt the one already running from its data directory (fast)."""
        self.server.start()

    def alive(self) -> bool:
        """Whether its process runs."""
        return self.server.alive()

    def stop(self) -> None:
        """Stop it; safe when it is dead already."""
        self.server.stop()


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signum)
