"""A throw-away database on the configured server, for commands that must start from nothing."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from knowledge_assets.db.admin import create_database, drop_database
from knowledge_assets.db.engine import database_url
from knowledge_assets.db.migrate import ensure_migrated
from knowledge_assets.settings import Settings

__all__ = ["scratch_engine"]


@contextmanager
def scratch_engine(settings: Settings, prefix: str = "ka_scratch") -> Iterator[sa.Engine]:
    """A fresh, migrated database on the server of ``settings``, dropped when the block ends.

    The server is the embedded one under ``KNOWLEDGE_HOME`` or ``KNOWLEDGE_DATABASE_URL``'s; the
    user's own graph there is never read or written.
    """
    admin = make_url(database_url(settings)).set(database="postgres")
    url = create_database(admin.render_as_string(hide_password=False), prefix=prefix)
    engine = sa.create_engine(url, pool_size=2, max_overflow=2)
    try:
        ensure_migrated(engine)
        yield engine
    finally:
        engine.dispose()
        drop_database(url)
