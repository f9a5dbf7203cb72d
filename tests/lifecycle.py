"""What the lifecycle tests share: documents with a marker, and graphs compared ids aside."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from knowledge_assets.db import tables as t
from knowledge_assets.demo import corpus_files
from knowledge_assets.pipeline.models import DocumentInput

DEFAULT_ONTOLOGY = (
    Path(__file__).resolve().parents[1]
    / "knowledge_assets"
    / "pipeline"
    / "data"
    / "default_ontology.ttl"
)

MARKER = "Quillon"
"""A word of one document only (a person's first name), found nowhere once it is deleted.

One token, so that it is found even where text is stored token by token (the offline model's
cached output)."""

Snapshot = dict[str, list[tuple[Any, ...]]]

# Columns holding batch ids (which differ between a batch and a fresh build of part of it), and
# ids derived from a batch id: compared as the batch's rank in submission order / left out.
_BATCH_COLUMNS = {"batch_id", "first_batch_id"}
_DERIVED_FROM_BATCH = {("quarantine", "id")}
_ORDER_COLUMNS = {("batch_contributions", "position"), ("registry_batches", "position")}
_LEFT_OUT = {"created_at", "merged_at"}


def demo_inputs() -> dict[str, DocumentInput]:
    """The demo corpus by document name."""
    return {p.name: DocumentInput(name=p.name, data=p.read_bytes()) for p in corpus_files()}


def marked(text: str) -> DocumentInput:
    """A document that alone mentions ``MARKER``."""
    body = f"Peter {MARKER}, the founder of {MARKER} Instruments, met Maria Okafor. {text}"
    return DocumentInput(name="marked.txt", data=body.encode())


def comparable(engine: sa.Engine) -> Snapshot:
    """Every graph and registry table, row for row, with batch ids replaced by their rank."""
    with engine.connect() as connection:
        ranks = _batch_ranks(connection)
        result: Snapshot = {}
        for table in (*t.GRAPH_TABLES, *t.REGISTRY_TABLES, t.registry_batches):
            columns = [c for c in table.columns if c.name not in _LEFT_OUT]
            rows = []
            for row in connection.execute(sa.select(*columns)).mappings():
                rows.append(tuple(_value(table.name, k, v, ranks) for k, v in row.items()))
            result[table.name] = sorted(rows, key=repr)
    return result


def _batch_ranks(connection: sa.Connection) -> dict[str, str]:
    c = t.batch_contributions.c
    ids = connection.execute(sa.select(c.batch_id).order_by(c.position, c.batch_id)).scalars()
    return {batch_id: f"batch#{rank}" for rank, batch_id in enumerate(ids)}


def _value(table: str, column: str, value: Any, ranks: dict[str, str]) -> Any:
    if (table, column) in _DERIVED_FROM_BATCH:
        return "-"
    if (table, column) in _ORDER_COLUMNS:
        return "-"  # the order itself shows in the ranks
    if column in _BATCH_COLUMNS:
        return ranks.get(value, value)
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return value


def differences(left: Snapshot, right: Snapshot) -> dict[str, tuple[int, int]]:
    """Tables whose rows differ, with the rows only on each side (for assertion messages)."""
    found = {}
    for table in sorted(set(left) | set(right)):
        a, b = set(left.get(table, [])), set(right.get(table, []))
        if a != b:
            found[table] = (len(a - b), len(b - a))
    return found


def changed_ontology(folder: Path) -> Path:
    """The default ontology with a class added (City, for GPE names) and ``acquired`` removed."""
    text = DEFAULT_ONTOLOGY.read_text(encoding="utf-8")
    start, end = text.index("news:acquired a owl:ObjectProperty"), text.index("news:spouseOf a")
    text = text[:start] + text[end:] + _CITY
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "ontology-v2.ttl"
    path.write_text(text, encoding="utf-8")
    return path


_CITY = """
news:City a owl:Class ;
    rdfs:subClassOf news:Place ;
    rdfs:label "City"@en ;
    rdfs:comment "A city or town."@en ;
    ka:nerLabel "GPE" .
"""


def files_containing(root: Path, text: str, *, skip: tuple[str, ...] = ("pg",)) -> list[str]:
    """Files under ``root`` (the database's own files left out) whose bytes contain ``text``."""
    needle = text.encode("utf-8")
    found = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if relative.parts and relative.parts[0] in skip:
            continue
        if path.is_file() and not path.is_symlink() and needle in path.read_bytes():
            found.append(relative.as_posix())
    return found


def tables_containing(engine: sa.Engine, text: str) -> list[str]:
    """Tables of every schema (ours and Dagster's) with a row whose text contains ``text``.

    What ``pg_dump --data-only`` would write, table by table: each row as text.
    """
    found = []
    with engine.connect() as connection:
        tables = connection.execute(
            sa.text(
                "SELECT table_schema, table_name FROM information_schema.tables "
                "WHERE table_type = 'BASE TABLE' "
                "AND table_schema NOT IN ('pg_catalog', 'information_schema')"
            )
        ).all()
        for schema, name in tables:
            query = sa.text(f'SELECT count(*) FROM "{schema}"."{name}" AS r WHERE r::text LIKE :p')
            if connection.execute(query, {"p": f"%{text}%"}).scalar_one():
                found.append(f"{schema}.{name}")
    return found


def dump_containing(url: str, text: str) -> bool:
    """Whether ``pg_dump`` of the whole database (schema and data, every schema) holds ``text``.

    The dump tool is the embedded server's own (the ``pgserver`` wheel's, PostgreSQL 16), so
    this is the dump an operator would take, not our reading of the tables.
    """
    import pgserver

    target = sa.make_url(url)
    binary = Path(pgserver.__file__).parent / "pginstall" / "bin" / "pg_dump"
    argv = [str(binary), "--no-owner", "--dbname", target.database or ""]
    argv += ["--username", target.username or "postgres"]
    host = target.host or str(target.query.get("host", ""))
    argv += ["--host", host] + (["--port", str(target.port)] if target.port else [])
    env = dict(os.environ, PGPASSWORD=target.password or "")
    done = subprocess.run(argv, env=env, capture_output=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    return text.encode("utf-8") in done.stdout


def registry_settled(engine: sa.Engine) -> bool:
    """Whether the registry holds every batch of the graph as it is now (nothing to replay)."""
    from knowledge_assets.pipeline.registry import needs_replay, pending_batches

    with engine.connect() as connection:
        return not pending_batches(connection) and not needs_replay(connection)
