"""Our own schema migrations (Alembic), for domain tables only, in the ``knowledge`` schema."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

SCHEMA = "knowledge"
_MIGRATIONS = Path(__file__).with_name("migrations")
# Any fixed 64-bit number: serialises concurrent migrators (API, run workers, CLI) on one database.
_ADVISORY_LOCK = 0x6B6E6F776C656467
_migrated: set[str] = set()


def alembic_config(connection: sa.Connection) -> Config:
    """An Alembic config that runs our migrations on an open connection."""
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def ensure_migrated(engine: sa.Engine) -> None:
    """Bring the ``knowledge`` schema to the newest revision, once per process and database."""
    key = engine.url.render_as_string(hide_password=False)
    if key in _migrated:
        return
    with engine.begin() as connection:
        connection.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _ADVISORY_LOCK})
        connection.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
        command.upgrade(alembic_config(connection), "head")
    _migrated.add(key)
