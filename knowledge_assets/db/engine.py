"""Where the database is and how we connect: one engine per process and URL."""

from __future__ import annotations

import threading
from functools import cache

import sqlalchemy as sa

from knowledge_assets.db.embedded import EmbeddedPostgres, to_sqlalchemy_url
from knowledge_assets.db.migrate import ensure_migrated
from knowledge_assets.settings import Settings

_embedded_lock = threading.Lock()
_embedded: dict[str, EmbeddedPostgres] = {}


def database_url(settings: Settings) -> str:
    """The configured external database, or the embedded one under ``KNOWLEDGE_HOME``."""
    if settings.database_url:
        return to_sqlalchemy_url(settings.database_url)
    key = str(settings.pgdata_dir)
    with _embedded_lock:
        server = _embedded.setdefault(key, EmbeddedPostgres(settings.pgdata_dir))
    return server.start()


def embedded_server(settings: Settings) -> EmbeddedPostgres | None:
    """The embedded server this process started for ``settings`` (``None`` if external)."""
    if settings.database_url:
        return None
    with _embedded_lock:
        return _embedded.get(str(settings.pgdata_dir))


def stop_embedded() -> None:
    """Release every embedded server this process started (they stop when nobody holds them)."""
    with _embedded_lock:
        servers = list(_embedded.values())
        _embedded.clear()
    for server in servers:
        server.stop()


@cache
def engine_for(url: str) -> sa.Engine:
    """A pooled engine for ``url``, shared by the whole process.

    ``pool_pre_ping`` lets a pooled connection survive a database restart between uses.
    """
    return sa.create_engine(url, pool_size=5, max_overflow=5, pool_pre_ping=True)


def get_engine(settings: Settings) -> sa.Engine:
    """The process-wide engine for the configured database, with our schema migrated."""
    engine = engine_for(database_url(settings))
    ensure_migrated(engine)
    return engine
