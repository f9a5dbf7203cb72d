"""A run that failed before the daemon ever looked is still retried.

Dagster's run retry daemon starts its cursors at the newest event when it has none, ignoring
every older failure. ``prepare_instance`` (what ``knowledge up`` runs before starting the
daemon) sets them while the instance is new, so a failure in the platform's first seconds counts.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from knowledge_assets.demo import corpus_files
from knowledge_assets.instance.dagster_internals import RUN_RETRY_CURSOR_KEYS
from knowledge_assets.instance.home import prepare_instance
from knowledge_assets.orchestration.orchestrator import Orchestrator
from knowledge_assets.orchestration.state import BatchState
from knowledge_assets.pipeline.models import DocumentInput
from knowledge_assets.settings import Settings
from tests.durability import platform_instance
from tests.processes import DagsterDaemon


@pytest.fixture
def orchestrator(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Orchestrator]:
    monkeypatch.setenv("DAGSTER_HOME", str(settings.dagster_home))
    prepare_instance(settings)
    with Orchestrator.for_settings(settings) as orchestrator:
        yield orchestrator


def test_preparing_sets_the_cursors_once(settings: Settings, orchestrator: Orchestrator) -> None:
    keys = set(RUN_RETRY_CURSOR_KEYS)
    with platform_instance(settings) as instance:
        first = instance.daemon_cursor_storage.get_cursor_values(keys)
        assert set(first) == keys
        orchestrator.submit([DocumentInput(name="a.txt", data=b"Ada Lind lives in Oslo.")])
        prepare_instance(settings)  # a restart: the cursors stay where the daemon left them
        assert instance.daemon_cursor_storage.get_cursor_values(keys) == first


def test_a_run_failed_before_the_daemon_first_looked_is_retried(
    settings: Settings, orchestrator: Orchestrator
) -> None:
    items = [DocumentInput(name=p.name, data=p.read_bytes()) for p in corpus_files()[:2]]
    batch_id = orchestrator.submit(items).batch_id
    (run_id,) = orchestrator.run_ids(batch_id)
    with platform_instance(settings) as instance:
        run = instance.get_run_by_id(run_id)
        assert run is not None
        instance.report_run_failed(run, message="the worker died before the daemon started")
        failed = instance.get_run_by_id(run_id)
        assert failed is not None and failed.tags.get("dagster/will_retry") == "true"
    daemon = DagsterDaemon(settings).start()
    try:
        done = orchestrator.wait(batch_id, timeout_s=240)
    finally:
        daemon.stop()
    assert done.state == BatchState.COMPLETE, done
    assert len(done.runs) == 2 and done.runs[0] == run_id
