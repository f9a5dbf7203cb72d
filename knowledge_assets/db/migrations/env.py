"""Alembic environment: always run online on the connection handed in by ``ensure_migrated``."""

from alembic import context

from knowledge_assets.db.migrate import SCHEMA

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    version_table="alembic_version",
    version_table_schema=SCHEMA,
    transactional_ddl=True,
)
with context.begin_transaction():
    context.run_migrations()
