"""Pooled dagster-postgres storages: set by dagster.yaml, surviving a database restart."""

import shutil
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa

from knowledge_assets.db.embedded import EmbeddedPostgres
from knowledge_assets.instance import storage as postgres_storage
from knowledge_assets.instance.storage import (
    PooledPostgresEventLogStorage,
    PooledPostgresRunStorage,
    PooledPostgresScheduleStorage,
)
from tests.conftest import PROJECT_ROOT


def _engines(instance: dg.DagsterInstance) -> list[sa.Engine]:
    storages = [instance.run_storage, instance.event_log_storage, instance.schedule_storage]
    return [s._engine for s in storages]  # type: ignore[attr-defined]


def test_project_instance_uses_pooled_pinged_storages(
    dagster_instance: dg.DagsterInstance,
) -> None:
    assert isinstance(dagster_instance.run_storage, PooledPostgresRunStorage)
    assert isinstance(dagster_instance.event_log_storage, PooledPostgresEventLogStorage)
    assert isinstance(dagster_instance.schedule_storage, PooledPostgresScheduleStorage)
    for engine in _engines(dagster_instance):
        assert isinstance(engine.pool, sa.QueuePool)
        assert engine.pool._pre_ping
    # Run workers rebuild the instance from its reference: they must get the pool too.
    rebuilt = dg.DagsterInstance.from_ref(dagster_instance.get_ref())
    try:
        assert isinstance(rebuilt.event_log_storage, PooledPostgresEventLogStorage)
        assert all(isinstance(e.pool, sa.QueuePool) for e in _engines(rebuilt))
    finally:
        rebuilt.dispose()


def test_a_run_reuses_database_sessions(dagster_instance: dg.DagsterInstance) -> None:
    @dg.op
    def step(context: dg.OpExecutionContext) -> None:
        context.log.info("one more event")

    @dg.job
    def many_events() -> None:
        for index in range(5):
            step.alias(f"step_{index}")()

    before = _sessions(dagster_instance)
    assert many_events.execute_in_process(instance=dagster_instance).success
    # Dozens of event writes; NullPool would open a session for each.
    assert _sessions(dagster_instance) - before <= 6


def _sessions(instance: dg.DagsterInstance) -> int:
    engine = _engines(instance)[0]
    with engine.connect() as connection:
        connection.execute(sa.text("SELECT pg_stat_clear_snapshot()"))
        return int(
            connection.execute(
                sa.text("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
            ).scalar_one()
        )


def _instance_on(server: EmbeddedPostgres, home: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("KNOWLEDGE_DATABASE_URL", server.start())
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return dg.DagsterInstance.from_config(str(home))


def _restarting_job(server: EmbeddedPostgres) -> dg.JobDefinition:
    @dg.op
    def before(context: dg.OpExecutionContext) -> int:
        context.log.info("written on the first server process")
        return 1

    @dg.op
    def restart_database(value: int) -> int:
        server.restart()
        return value + 1

    @dg.op
    def after(context: dg.OpExecutionContext, value: int) -> int:
        context.log.info("written on the restarted server")
        return value + 1

    @dg.job
    def across_a_restart() -> None:
        after(restart_database(before()))

    return across_a_restart


def test_a_database_restart_mid_run_does_not_fail_the_run(
    own_server: EmbeddedPostgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    instance = _instance_on(own_server, tmp_path / "dagster", monkeypatch)
    try:
        result = _restarting_job(own_server).execute_in_process(instance=instance)
        assert result.success
        assert result.output_for_node("after") == 3
        steps = instance.get_records_for_run(
            result.run_id, of_type=dg.DagsterEventType.STEP_SUCCESS
        ).records
        assert len(steps) == 3
    finally:
        instance.dispose()


def test_without_pre_ping_the_same_restart_breaks_the_run(
    own_server: EmbeddedPostgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control: proves the test above really hands the run stale pooled connections."""
    pinged = postgres_storage.pooled_engine

    def unpinged(*args: Any, **kwargs: Any) -> sa.Engine:
        engine = pinged(*args, **kwargs)
        engine.pool._pre_ping = False  # type: ignore[attr-defined]
        return engine

    monkeypatch.setattr(postgres_storage, "pooled_engine", unpinged)
    instance = _instance_on(own_server, tmp_path / "dagster", monkeypatch)
    try:
        with pytest.raises(sa.exc.OperationalError):
            _restarting_job(own_server).execute_in_process(instance=instance)
    finally:
        instance.dispose()
