"""Creating and dropping whole databases: used by tests and benchmarks for isolation."""

from __future__ import annotations

import re
import uuid

import sqlalchemy as sa
from sqlalchemy.engine import make_url

_SAFE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def create_database(admin_url: str, prefix: str = "ka_test") -> str:
    """Create a fresh, uniquely named database and return its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    _admin_execute(admin_url, f'CREATE DATABASE "{name}"')
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_database(url: str) -> None:
    """Drop the database at ``url``, closing its other sessions first."""
    target = make_url(url)
    name = target.database or ""
    if not _SAFE_NAME.match(name):
        raise ValueError(f"refusing to drop a database with an unexpected name: {name!r}")
    admin_url = target.set(database="postgres").render_as_string(hide_password=False)
    _admin_execute(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _admin_execute(admin_url: str, statement: str) -> None:
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    try:
        with engine.connect() as connection:
            connection.execute(sa.text(statement))
    finally:
        engine.dispose()
