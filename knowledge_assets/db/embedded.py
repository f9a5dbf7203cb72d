"""A project-local PostgreSQL server, started on demand from the ``pgserver`` wheel."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import psutil

_log = logging.getLogger(__name__)


class EmbeddedPostgresError(RuntimeError):
    """The embedded server could not be started; the message says where its log is."""


def _pgserver() -> Any:
    # platformdirs warns when XDG_RUNTIME_DIR is unset (as under CI); pgserver falls back to /tmp.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

        return pgserver


class EmbeddedPostgres:
    """Handle on a PostgreSQL server whose data lives in ``pgdata``.

    Several processes may hold a handle on the same data directory; ``pgserver`` counts them and
    the last one to exit stops the server, so a CLI call beside a running platform is safe.
    """

    def __init__(self, pgdata: Path) -> None:
        self.pgdata = pgdata
        self._server: Any = None

    def start(self) -> str:
        """Start (or attach to) the server and return a SQLAlchemy URL for its ``postgres`` db."""
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
        return to_sqlalchemy_url(self._server.get_uri())

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
