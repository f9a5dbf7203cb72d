"""A project-local PostgreSQL server, started on demand from the ``pgserver`` wheel."""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psutil
import psycopg2

__all__ = [
    "IDLE_IN_TRANSACTION_TIMEOUT",
    "EmbeddedPostgres",
    "EmbeddedPostgresError",
    "pgserver_bin",
    "system_user",
    "to_sqlalchemy_url",
]


_log = logging.getLogger(__name__)

# A worker frozen mid-transaction (SIGSTOP, a partition) keeps its locks until its session ends,
# and its kernel still answers TCP keepalives: only this timeout ends it. A frozen ingest holds
# the lease its run must lose before the run is retried elsewhere (instance/leases.py). Our
# transactions issue statements back to back; none sits idle anywhere near this long.
IDLE_IN_TRANSACTION_TIMEOUT = "20s"


class EmbeddedPostgresError(RuntimeError):
    """The embedded server could not be started; the message says where its log is."""


def _pgserver() -> Any:
    # platformdirs warns when XDG_RUNTIME_DIR is unset (as under CI); pgserver falls back to /tmp.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

        return pgserver


def pgserver_bin() -> Path:
    """The PostgreSQL binaries inside the pgserver wheel."""
    return Path(_pgserver()._commands.POSTGRES_BIN_PATH)


def system_user() -> str | None:
    """The user PostgreSQL runs as: pgserver's unprivileged ``pgserver`` when we are root."""
    return "pgserver" if os.geteuid() == 0 else None


class EmbeddedPostgres:
    """Handle on a PostgreSQL server whose data lives in ``pgdata``.

    Several processes may hold a handle on the same data directory; ``pgserver`` counts them and
    the last one to exit stops the server, so a CLI call beside a running platform is safe. When
    ``knowledge up --listen`` serves the directory itself (``platform/services/postgres.py``),
    a handle connects to that server's socket and never starts or stops anything.
    """

    def __init__(self, pgdata: Path) -> None:
        self.pgdata = pgdata
        self._server: Any = None

    def start(self) -> str:
        """Start (or attach to) the server and return a SQLAlchemy URL for its ``postgres`` db."""
        served = self.served_url()
        if served is not None:
            return served
        if self._server is None:
            self.pgdata.parent.mkdir(parents=True, exist_ok=True)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    self._server = _pgserver().get_server(self.pgdata, cleanup_mode="stop")
            except Exception as exc:
                raise EmbeddedPostgresError(
                    f"could not start the embedded PostgreSQL in {self.pgdata}: {exc} "
                    f"(server log: {self.pgdata / 'log'})"
                ) from exc
            _log.debug("embedded PostgreSQL ready in %s", self.pgdata)
            _settle_idle_timeout(self._server.get_uri())
        return to_sqlalchemy_url(self._server.get_uri())

    def served_url(self) -> str | None:
        """The socket URL of a server ``knowledge up --listen`` runs on this directory, if any."""
        try:
            served = int((self.pgdata / "service.pid").read_text().strip())
            postmaster = (self.pgdata / "postmaster.pid").read_text().splitlines()
        except (OSError, ValueError):
            return None
        if len(postmaster) < 4 or int(postmaster[0]) != served or not psutil.pid_exists(served):
            return None
        socket_dir = quote(str(self.pgdata), safe="/")
        return f"postgresql+psycopg2://postgres@/postgres?host={socket_dir}&port={postmaster[3]}"

    def initialise(self) -> None:
        """``initdb`` the data directory (through pgserver) and leave the server stopped."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            server = _pgserver().get_server(self.pgdata, cleanup_mode=None)
        try:
            _settle_idle_timeout(server.get_uri())
        finally:
            subprocess.run(
                [
                    str(pgserver_bin() / "pg_ctl"),
                    "-D",
                    str(self.pgdata),
                    "-m",
                    "fast",
                    "-w",
                    "stop",
                ],
                user=system_user(),
                capture_output=True,
                check=True,
            )
            server.cleanup()  # forget this process's handle: it must not outlive it on disk

    def restart(self) -> None:
        """Restart the running server in place (``pg_ctl restart -m fast``).

        Every connection is cut; the data and the socket stay. For resilience tests and operators.
        """
        if self._server is None:
            raise EmbeddedPostgresError("the embedded PostgreSQL is not started by this process")
        pg_ctl = _pgserver()._commands.pg_ctl  # generated at import time, invisible to mypy
        pg_ctl(["-m", "fast", "-w", "restart"], pgdata=self.pgdata, user=self._server.system_user)
        # pgserver stops the server on the last ``stop`` only if the postmaster it recorded still
        # runs: record the new one, or a restarted server would outlive its last handle.
        self._server.ensure_postgres_running()

    def alive(self) -> bool:
        """Whether the postmaster this handle started (or attached to) still runs.

        A killed postmaster may linger as a zombie until its parent reaps it: that is dead.
        """
        if self._server is None:
            return False
        return _running(self._server.get_postmaster_info().pid)

    def revive(self) -> str:
        """Start the server again after its postmaster died; the URL stays the same.

        Raises:
            EmbeddedPostgresError: PostgreSQL refused to start (e.g. backends of the dead
                postmaster still hold its shared memory); the caller retries later.
        """
        if self._server is None:
            return self.start()
        pid_file = self.pgdata / "postmaster.pid"
        with self._server._lock:  # pgserver's lock between the processes sharing the server
            recorded = _recorded_pid(pid_file)
            if recorded is not None and not _running(recorded):
                # PostgreSQL refuses to start while the pid in its lock file exists, and a
                # zombie's pid does: the file of a postmaster known dead can go.
                pid_file.unlink(missing_ok=True)
            try:
                self._server.ensure_postgres_running()
            except Exception as exc:
                raise EmbeddedPostgresError(
                    f"could not restart the embedded PostgreSQL in {self.pgdata}: {exc} "
                    f"(server log: {self.pgdata / 'log'})"
                ) from exc
        return to_sqlalchemy_url(self._server.get_uri())

    def stop(self) -> None:
        """Release this process's handle; the server stops when no process holds one."""
        if self._server is not None:
            self._server.cleanup()
            self._server = None


def _settle_idle_timeout(uri: str) -> None:
    """Set ``idle_in_transaction_session_timeout`` on the server, once per data directory."""
    with contextlib.closing(psycopg2.connect(uri)) as connection:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute("SELECT setting FROM pg_settings WHERE name = %s", (_IDLE,))
            current = cursor.fetchone()
            if current is not None and f"{int(current[0]) // 1000}s" == IDLE_IN_TRANSACTION_TIMEOUT:
                return
            cursor.execute(f"ALTER SYSTEM SET {_IDLE} = %s", (IDLE_IN_TRANSACTION_TIMEOUT,))
            cursor.execute("SELECT pg_reload_conf()")


_IDLE = "idle_in_transaction_session_timeout"


def _recorded_pid(pid_file: Path) -> int | None:
    try:
        first = pid_file.read_text(encoding="utf-8").splitlines()[0]
    except (OSError, IndexError):
        return None
    return int(first) if first.strip().isdigit() else None


def _running(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def to_sqlalchemy_url(url: str) -> str:
    """Spell a libpq URL with the psycopg2 driver (SQLAlchemy 2.1 defaults to psycopg 3)."""
    for prefix in ("postgresql+psycopg2://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix) :]
    raise ValueError(f"not a PostgreSQL URL: {url.split('@')[-1]!r}")
