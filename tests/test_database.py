"""Our migrations create only domain tables, in our own schema, idempotently."""

from __future__ import annotations

import sqlalchemy as sa

from knowledge_assets.db.engine import engine_for
from knowledge_assets.db.migrate import ensure_migrated
from knowledge_assets.db.tables import metadata


def _tables(url: str) -> dict[str, set[str]]:
    with engine_for(url).connect() as connection:
        rows = connection.execute(
            sa.text(
                "SELECT table_schema, table_name FROM information_schema.tables "
                "WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
            )
        )
        found: dict[str, set[str]] = {}
        for schema, name in rows:
            found.setdefault(schema, set()).add(name)
        return found


def test_migrations_create_the_graph_store_in_our_schema(database_url: str) -> None:
    ensure_migrated(engine_for(database_url))
    tables = _tables(database_url)
    expected = {t.name for t in metadata.sorted_tables} | {"alembic_version"}
    assert tables == {"knowledge": expected}


def test_migrating_twice_changes_nothing(database_url: str) -> None:
    engine = engine_for(database_url)
    ensure_migrated(engine)
    from knowledge_assets.db import migrate

    migrate._migrated.clear()
    ensure_migrated(engine)
    with engine.connect() as connection:
        version = connection.execute(sa.text("SELECT version_num FROM knowledge.alembic_version"))
        assert [row[0] for row in version] == [_head()]


def _head() -> str:
    from alembic.script import ScriptDirectory

    from knowledge_assets.db.migrate import _MIGRATIONS

    heads = ScriptDirectory(str(_MIGRATIONS)).get_heads()
    assert len(heads) == 1, f"migrations must form one chain, found heads {heads}"
    return heads[0]


def test_table_definitions_match_the_migrated_schema(database_url: str) -> None:
    engine = engine_for(database_url)
    ensure_migrated(engine)
    inspector = sa.inspect(engine)
    for table in metadata.sorted_tables:
        columns = {c["name"] for c in inspector.get_columns(table.name, schema="knowledge")}
        assert columns == {c.name for c in table.columns}, table.name
