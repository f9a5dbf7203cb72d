"""A document id given twice in one batch (issue 16, defect 8): the kept copy stays accepted."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from knowledge_assets.orchestration.orchestrator import Orchestrator
from knowledge_assets.orchestration.state import BatchState
from knowledge_assets.pipeline.models import DocumentInput
from knowledge_assets.settings import Settings
from tests.processes import DagsterDaemon


@pytest.fixture
def orchestrator(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Orchestrator]:
    monkeypatch.setenv("DAGSTER_HOME", str(settings.dagster_home))
    with Orchestrator.for_settings(settings) as orchestrator:
        daemon = DagsterDaemon(settings).start()
        try:
            yield orchestrator
        finally:
            daemon.stop()


def test_the_kept_copy_is_accepted_and_the_second_is_refused_as_a_duplicate(
    orchestrator: Orchestrator,
) -> None:
    kept = DocumentInput(name="notes", data=b"Ada Lovelace wrote about the Analytical Engine.")
    clash = DocumentInput(name="notes", data=b"Charles Babbage lived in London.")
    other = DocumentInput(name="other", data=b"Alan Turing worked in Manchester.")
    batch_id = orchestrator.submit([kept, clash, other]).batch_id
    done = orchestrator.wait(batch_id, timeout_s=300)
    assert done.state == BatchState.COMPLETE, done
    by_status = {(d.name, d.status): d.reason for d in done.documents}
    assert set(by_status) == {("notes", "accepted"), ("notes", "refused"), ("other", "accepted")}
    reason = by_status[("notes", "refused")] or ""
    assert "submitted twice" in reason and "first one was kept" in reason
    assert by_status[("notes", "accepted")] is None
