"""PostgreSQL from the ``pgserver`` wheel, reachable from other hosts over TCP with a password.

``pgserver`` starts its server with ``-h ""`` on the command line (Unix socket only), and
command-line options outrank ``postgresql.conf`` and ``ALTER SYSTEM``: it cannot listen on TCP. So
pgserver is used for what it does well, ``initdb`` (as the unprivileged ``pgserver`` user when we
are root), once; then the wheel's own ``postgres`` runs in the foreground on the same data
directory: ``-h BIND -p PORT -k DATA``, ``pg_hba.conf`` requiring scram-sha-256 passwords from
every TCP client and trusting only the socket inside the 0700 data directory.

The one-host default does not need this: ``db/embedded.py`` runs the same data directory through
pgserver on its socket. A home served here is marked by ``service.pid``; the embedded path then
connects to this server's socket instead of starting (and later stopping) one of its own.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

import psycopg2

from knowledge_assets.db.embedded import (
    IDLE_IN_TRANSACTION_TIMEOUT,
    EmbeddedPostgres,
    pgserver_bin,
    system_user,
)
from knowledge_assets.platform.services.base import ManagedService, connect_host

__all__ = ["PostgresService"]

_HBA = """\
# Written by knowledge: the socket (inside the 0700 data directory) is trusted;
# every TCP client needs the password.
local   all   all                 trust
host    all   all   0.0.0.0/0     scram-sha-256
host    all   all   ::/0          scram-sha-256
"""


class PostgresService(ManagedService):
    """PostgreSQL 16 with its data in ``data_dir``, on TCP ``bind:port`` and a local socket."""

    name = "postgres"
    stop_signal = signal.SIGINT  # fast shutdown: end sessions, checkpoint, exit
    signal_whole_group = False

    def __init__(
        self,
        data_dir: Path,
        password: str,
        port: int,
        *,
        bind: str = "127.0.0.1",
        max_connections: int = 300,
        idle_in_transaction_timeout: str = IDLE_IN_TRANSACTION_TIMEOUT,
    ) -> None:
        super().__init__(data_dir)
        self.password = password
        self.port = port
        self.bind = bind
        self.max_connections = max_connections
        self.idle_in_transaction_timeout = idle_in_transaction_timeout

    def prepare(self) -> None:
        """``initdb`` through pgserver once; stop a socket-only server; write ``pg_hba.conf``."""
        if not (self.data_dir / "PG_VERSION").exists():
            EmbeddedPostgres(self.data_dir).initialise()
        self._stop_embedded()
        (self.data_dir / "pg_hba.conf").write_text(_HBA)
        self.log_file.touch()
        if (user := self.run_as()) is not None:
            shutil.chown(self.log_file, user)

    def _stop_embedded(self) -> None:
        # A server pgserver started on this data directory (socket only) must give way.
        if (self.data_dir / "postmaster.pid").exists():
            subprocess.run(
                [str(pgserver_bin() / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w",
                 "stop"],
                user=self.run_as(), capture_output=True, check=False,
            )  # fmt: skip

    def command(self) -> Sequence[str]:
        """The postmaster in the foreground."""
        return [
            str(pgserver_bin() / "postgres"),
            "-D", str(self.data_dir),
            "-h", self.bind,
            "-p", str(self.port),
            "-k", str(self.data_dir),
            "-c", f"max_connections={self.max_connections}",
            "-c", "password_encryption=scram-sha-256",
            "-c", f"idle_in_transaction_session_timeout={self.idle_in_transaction_timeout}",
        ]  # fmt: skip

    def run_as(self) -> str | None:
        """The pgserver wheel's unprivileged user when we are root (PostgreSQL refuses root)."""
        return system_user()

    def health(self) -> bool:
        """A session on the local socket answers ``SELECT 1``."""
        try:
            connection = psycopg2.connect(self.socket_dsn(), connect_timeout=1)
            with contextlib.closing(connection) as conn, conn.cursor() as cur:
                cur.execute("SELECT 1")
                return bool(cur.fetchone() == (1,))
        except psycopg2.Error:
            return False

    def ready(self) -> None:
        """Set the password TCP clients need (through the trusted socket)."""
        with contextlib.closing(psycopg2.connect(self.socket_dsn())) as conn:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("SET password_encryption = 'scram-sha-256'")
                cur.execute("ALTER USER postgres PASSWORD %s", (self.password,))

    def socket_dsn(self, database: str = "postgres") -> str:
        """A libpq URL on the data directory's socket (this host, no password)."""
        socket_dir = quote(str(self.data_dir), safe="/")
        return f"postgresql://postgres@/{database}?host={socket_dir}&port={self.port}"

    def url(self, host: str | None = None, database: str = "postgres") -> str:
        """SQLAlchemy URL (psycopg2) over TCP with the password, for any host."""
        where = host or connect_host(self.bind)
        secret = quote(self.password, safe="")
        return f"postgresql+psycopg2://postgres:{secret}@{where}:{self.port}/{database}"
