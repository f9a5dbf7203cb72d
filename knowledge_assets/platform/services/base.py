"""What every service run from a wheel under ``KNOWLEDGE_HOME`` has in common.

A service is one foreground server process in a session of its own (a Ctrl-C of the terminal
reaches it only through ``stop()``), its PID in ``<data dir>/service.pid``, its output in
``<data dir>/<name>.log``. ``start()`` is idempotent: a server already running from the same data
directory (left by an earlier ``knowledge up`` that died) is adopted, never started twice. The
supervisor asks ``alive()`` and may ``restart()``; nothing else about a service is its concern.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

__all__ = ["ManagedService", "ServiceError", "StartReport", "connect_host", "port_is_free"]


class ServiceError(RuntimeError):
    """A service could not start or does not answer; the message names its log."""


@dataclass(frozen=True)
class StartReport:
    """How a start went: seconds until healthy, and whether a running server was adopted."""

    seconds: float
    adopted: bool


def connect_host(bind: str) -> str:
    """The address a client on this host uses for a server bound to ``bind``."""
    return "127.0.0.1" if bind in ("0.0.0.0", "", "*") else bind


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether nothing listens on ``host:port`` and it can be bound now."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


class ManagedService(ABC):
    """A server process with all its data under one directory."""

    name: str = "service"
    start_timeout_s: float = 30.0
    stop_signal: signal.Signals = signal.SIGTERM
    # PostgreSQL wants its stop signal sent to the postmaster alone, which stops its backends.
    signal_whole_group: bool = True

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._process: subprocess.Popen[bytes] | None = None

    @abstractmethod
    def command(self) -> Sequence[str]:
        """The server's argv (it must stay in the foreground)."""

    @abstractmethod
    def prepare(self) -> None:
        """Write configuration and create folders before a start."""

    @abstractmethod
    def health(self) -> bool:
        """True when the server answers an authenticated request."""

    def run_as(self) -> str | None:
        """System user to run the server as (None: ours)."""
        return None

    def ready(self) -> None:  # noqa: B027 - optional hook, most services need nothing
        """Called once a freshly started server is healthy (e.g. to set a password)."""

    @property
    def pid_file(self) -> Path:
        """Where the server's PID is recorded."""
        return self.data_dir / "service.pid"

    @property
    def log_file(self) -> Path:
        """The server's stdout and stderr."""
        return self.data_dir / f"{self.name}.log"

    def running_pid(self) -> int | None:
        """The PID of a live server started from this data directory, if any."""
        try:
            pid = int(self.pid_file.read_text().strip())
            process = psutil.Process(pid)
            if process.status() == psutil.STATUS_ZOMBIE:
                return None
            if Path(process.cwd()) != self.data_dir.absolute():
                return None  # the PID was reused by another program (servers run in their dir)
        except (FileNotFoundError, ValueError, psutil.Error):
            return None
        return pid

    def alive(self) -> bool:
        """Whether the server process runs (not whether it answers: see ``health``)."""
        return self.running_pid() is not None

    def start(self) -> StartReport:
        """Start the server (or adopt a running one) and wait until it is healthy."""
        began = time.perf_counter()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.alive() and self.health():
            return StartReport(time.perf_counter() - began, adopted=True)
        self.prepare()
        with self.log_file.open("ab") as log:
            self._process = subprocess.Popen(
                list(self.command()),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.data_dir,
                start_new_session=True,
                user=self.run_as(),
            )
        self.pid_file.write_text(str(self._process.pid))
        self._wait_healthy(self.start_timeout_s)
        self.ready()
        return StartReport(time.perf_counter() - began, adopted=False)

    def restart(self) -> StartReport:
        """Stop, then start again on the same data."""
        self.stop()
        return self.start()

    def stop(self, timeout_s: float = 15.0) -> None:
        """Signal the server's session to stop; SIGKILL it after ``timeout_s``."""
        pid = self.running_pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                (os.killpg if self.signal_whole_group else os.kill)(pid, self.stop_signal)
            try:
                psutil.Process(pid).wait(timeout_s)
            except psutil.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
                with contextlib.suppress(psutil.Error):
                    psutil.Process(pid).wait(5)
            except psutil.NoSuchProcess:
                pass
        self._reap()
        self.pid_file.unlink(missing_ok=True)

    def kill(self) -> None:
        """SIGKILL the server's session at once, as a crash would (for failure tests)."""
        pid = self.running_pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            with contextlib.suppress(psutil.Error):
                psutil.Process(pid).wait(5)
        self._reap()

    def _reap(self) -> None:
        if self._process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(5)
            self._process = None

    def _wait_healthy(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise ServiceError(
                    f"{self.name} exited with {self._process.returncode}; see {self.log_file}"
                )
            if self.health():
                return
            time.sleep(0.05)
        raise ServiceError(f"{self.name} not healthy after {timeout_s:.0f} s; see {self.log_file}")
