"""The inbox sensor against a real Dagster instance on PostgreSQL."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import dagster as dg
import sqlalchemy as sa

from knowledge_assets.db.engine import engine_for
from knowledge_assets.defs.extraction.partitions import BATCHES
from knowledge_assets.defs.extraction.sensor import inbox_sensor
from knowledge_assets.defs.resources import KnowledgeResource
from knowledge_assets.demo import corpus_files
from knowledge_assets.pipeline.batches import BatchStorage
from knowledge_assets.settings import Settings


def _drop(inbox: Path, files: list[Path], age_s: float = 60) -> None:
    inbox.mkdir(parents=True, exist_ok=True)
    for source in files:
        target = inbox / source.name
        shutil.copyfile(source, target)
        past = time.time() - age_s
        os.utime(target, (past, past))


def _tick(instance: dg.DagsterInstance, cursor: str | None) -> dg.SensorResult:
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"knowledge": KnowledgeResource()}
    )
    result = inbox_sensor(context)
    assert isinstance(result, dg.SensorResult)
    return result


def test_new_files_become_one_partition_and_one_run(
    dagster_instance: dg.DagsterInstance, settings: Settings
) -> None:
    _drop(settings.inbox_dir, corpus_files())
    first = _tick(dagster_instance, None)
    assert len(first.run_requests or []) == 1
    (request,) = first.run_requests or []
    (partitions,) = first.dynamic_partitions_requests or []
    assert isinstance(partitions, dg.AddDynamicPartitionsRequest)
    assert partitions.partitions_def_name == BATCHES
    assert list(partitions.partition_keys) == [request.partition_key]
    assert request.run_key == request.partition_key

    second = _tick(dagster_instance, first.cursor)
    assert not second.run_requests
    assert not second.dynamic_partitions_requests
    archived = settings.inbox_dir / ".submitted" / str(request.partition_key)
    assert sorted(p.name for p in archived.iterdir()) == [p.name for p in corpus_files()]
    assert not [p for p in settings.inbox_dir.iterdir() if not p.name.startswith(".")]


def test_a_repeated_tick_after_a_crash_requests_the_same_run_key(
    dagster_instance: dg.DagsterInstance, settings: Settings
) -> None:
    _drop(settings.inbox_dir, corpus_files())
    first = _tick(dagster_instance, None)
    # The daemon died before saving the cursor: the same files are seen again.
    again = _tick(dagster_instance, None)
    assert [r.run_key for r in again.run_requests or []] == [
        r.run_key for r in first.run_requests or []
    ]


def test_half_written_and_hidden_files_wait(
    dagster_instance: dg.DagsterInstance, settings: Settings
) -> None:
    (source,) = corpus_files()[:1]
    settings.inbox_dir.mkdir(parents=True)
    shutil.copyfile(source, settings.inbox_dir / "fresh.txt")  # just written: not settled
    _drop(settings.inbox_dir, [])
    partial = settings.inbox_dir / "big.txt.part"
    partial.write_text("Half of a document", encoding="utf-8")
    os.utime(partial, (0, 0))
    result = _tick(dagster_instance, None)
    assert not result.run_requests
    assert (settings.inbox_dir / "fresh.txt").exists()
    assert partial.exists()


def test_unreadable_files_are_moved_aside_with_a_reason(
    dagster_instance: dg.DagsterInstance, settings: Settings, tmp_path: Path
) -> None:
    binary = tmp_path / "scan.txt"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00binary")
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(b"%PDF-1.4 whatever")
    _drop(settings.inbox_dir, [binary, pdf, *corpus_files()[:1]])
    result = _tick(dagster_instance, None)
    assert len(result.run_requests or []) == 1
    rejected = settings.inbox_dir / ".rejected"
    assert (rejected / "scan.txt").exists()
    assert "binary" in (rejected / "scan.txt.reason.txt").read_text(encoding="utf-8")
    assert (rejected / "report.pdf").exists()
    assert ".txt" in (rejected / "report.pdf.reason.txt").read_text(encoding="utf-8")
    again = _tick(dagster_instance, result.cursor)
    assert not again.run_requests


def test_dagster_tables_are_dagsters_and_ours_hold_no_workflow_state(
    dagster_instance: dg.DagsterInstance, database_url: str, settings: Settings
) -> None:
    KnowledgeResource().engine()
    with engine_for(database_url).connect() as connection:
        rows = connection.execute(
            sa.text(
                "SELECT table_schema, table_name FROM information_schema.tables "
                "WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
            )
        ).all()
    dagster_tables = {name for schema, name in rows if schema == "public"}
    ours = {name for schema, name in rows if schema == "knowledge"}
    assert {"runs", "event_logs", "dynamic_partitions", "instigators", "jobs"} <= dagster_tables
    assert {schema for schema, _ in rows} == {"public", "knowledge"}
    workflow_words = ("run", "status", "state", "job", "progress", "partition", "step")
    assert not [t for t in ours if any(w in t for w in workflow_words)]


def test_when_every_file_is_refused_nothing_is_staged_or_requested(
    dagster_instance: dg.DagsterInstance, settings: Settings, tmp_path: Path
) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    latin = tmp_path / "latin.txt"
    latin.write_bytes("Caf\u00e9".encode("latin-1"))
    _drop(settings.inbox_dir, [empty, latin])
    result = _tick(dagster_instance, None)
    assert not result.run_requests
    assert not result.dynamic_partitions_requests
    rejected = settings.inbox_dir / ".rejected"
    assert "empty" in (rejected / "empty.txt.reason.txt").read_text(encoding="utf-8")
    assert "UTF-8" in (rejected / "latin.txt.reason.txt").read_text(encoding="utf-8")
    assert not (settings.storage_dir / "batches").exists()


def test_files_in_folders_are_named_by_their_path_in_the_inbox(
    dagster_instance: dg.DagsterInstance, settings: Settings
) -> None:
    source, other = corpus_files()[:2]
    _drop(settings.inbox_dir / "reports" / "2024", [source])
    _drop(settings.inbox_dir, [other])
    first = _tick(dagster_instance, None)
    (request,) = first.run_requests or []
    batch_id = str(request.partition_key)
    manifest = BatchStorage(settings.storage_dir).manifest(batch_id)
    assert [e.name for e in manifest.documents] == sorted(
        [f"reports/2024/{source.name}", other.name]
    )
    assert manifest.source == "inbox"
    _tick(dagster_instance, first.cursor)
    archived = settings.inbox_dir / ".submitted" / batch_id
    assert (archived / "reports" / "2024" / source.name).is_file()
    assert not (settings.inbox_dir / "reports").exists()
