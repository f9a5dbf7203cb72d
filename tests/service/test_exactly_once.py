"""The same batch through the API and the inbox at once runs exactly once (issue 16, defect 1).

Before the run gate, the inbox sensor's run key only saw the sensor's own runs: the API's run and
the sensor's both ran (two SUCCESS runs), and at 200 documents the API's run lost the fence
(``StaleAttempt``) and its stream showed an ``error``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from knowledge_assets.db.admin import create_database, drop_database
from knowledge_assets.db.engine import engine_for
from knowledge_assets.pipeline.documents import read_paths
from knowledge_assets.pipeline.inbox import SUBMITTED
from knowledge_assets.platform.services.valkey import ValkeyService
from knowledge_assets.settings import Settings
from tests.conftest import SESSION_BROKER_DATABASES, empty_broker
from tests.corpus import synthetic_documents
from tests.processes import DagsterDaemon, wait_until
from tests.service.conftest import Stack, _environment, wait_for_state
from tests.service.server import ApiServer, auth
from tests.service.test_events import full_stream


@pytest.fixture(scope="module")
def stack(admin_url: str, valkey: ValkeyService) -> Iterator[Stack]:
    """An API, a daemon (with the inbox sensor), a Celery worker, a database and a broker
    database of this module's own: every admitted run goes through the Celery launcher.

    Not the session's stack: hundreds of synthetic documents in its graph would crowd out the
    demo entities other API tests look for.
    """
    root = Path(tempfile.mkdtemp(prefix="kxo-", dir="/tmp"))
    url = create_database(admin_url)
    broker = empty_broker(valkey, SESSION_BROKER_DATABASES[1])
    env = _environment(root, url, KNOWLEDGE_BROKER_URL=broker)
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            if key.startswith(("KNOWLEDGE_", "DAGSTER_")):
                patch.setenv(key, value)
        settings = Settings()
        server = ApiServer(env, root / "logs" / "api.log").start()
        daemon = DagsterDaemon(settings).start()
        try:
            yield Stack(settings, env, server, batch_id="", root=root)
        finally:
            server.stop()
            daemon.stop()
            engine_for(url).dispose()
            drop_database(url)
            shutil.rmtree(root, ignore_errors=True)


def drop_settled(inbox: Path, files: dict[str, bytes]) -> list[Path]:
    """Write files into the inbox as already settled (their mtime a minute ago)."""
    inbox.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, data in files.items():
        path = inbox / name
        partial = path.with_name(path.name + ".part")
        partial.write_bytes(data)
        past = time.time() - 60
        os.utime(partial, (past, past))
        partial.rename(path)
        paths.append(path)
    return paths


def as_api_documents(files: dict[str, bytes], scratch: Path) -> list[dict[str, str]]:
    """The JSON documents the inbox makes of ``files``: same names (read_paths), same text."""
    scratch.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (scratch / name).write_bytes(data)
    items, refused = read_paths(sorted(scratch.iterdir()))
    assert not refused
    return [{"id": item.name, "text": item.data.decode()} for item in items]


def submit_json(stack: Stack, documents: list[dict[str, str]]) -> str:
    response = httpx.post(
        f"{stack.url}/batches", json={"documents": documents}, headers=auth(), timeout=120
    )
    assert response.status_code == 202, response.text
    return str(response.json()["batch_id"])


def sensor_done_with(stack: Stack, batch_id: str, count: int) -> bool:
    archived = stack.settings.inbox_dir / SUBMITTED / batch_id
    return archived.is_dir() and len(list(archived.iterdir())) == count


def assert_ran_once(stack: Stack, batch_id: str) -> None:
    status = wait_for_state(stack.url, batch_id, {"complete", "failed"}, timeout=600)
    assert status["state"] == "complete", status
    assert len(status["runs"]) == 1, f"the batch ran {len(status['runs'])} times"
    # The one run was launched through the Celery launcher and executed by the stack's worker.
    assert set(status["workers"]) == set(status["runs"]), status["workers"]
    events = full_stream(stack.url, batch_id)
    assert [e for e in events if e.kind == "error"] == []
    assert events[-1].kind == "complete"


def test_an_inbox_drop_of_a_batch_the_api_ran_starts_no_second_run(
    stack: Stack, tmp_path: Path
) -> None:
    files = {"xp1.txt": b"Grace Hopper visited the Harvard Mark I team in Cambridge.\n"}
    batch_id = submit_json(stack, as_api_documents(files, tmp_path / "api"))
    wait_for_state(stack.url, batch_id, {"complete"})
    drop_settled(stack.settings.inbox_dir, files)
    wait_until(lambda: sensor_done_with(stack, batch_id, 1), 120)
    assert_ran_once(stack, batch_id)


def race_api_and_inbox(stack: Stack, tmp_path: Path, count: int) -> None:
    files = {item.name: item.data for item in synthetic_documents(count)}
    documents = as_api_documents(files, tmp_path / "api")
    # Both at once: the files are settled on arrival, so the sensor's next tick (every 5 s)
    # requests the batch while the API's run is queued or running.
    drop_settled(stack.settings.inbox_dir, files)
    batch_id = submit_json(stack, documents)
    wait_until(lambda: sensor_done_with(stack, batch_id, count), 180)
    assert_ran_once(stack, batch_id)


def test_the_api_and_the_inbox_submitting_200_documents_at_once_run_them_once(
    stack: Stack, tmp_path: Path
) -> None:
    race_api_and_inbox(stack, tmp_path, 200)


@pytest.mark.slow
@pytest.mark.parametrize("trial", range(4))
def test_the_race_repeated(stack: Stack, tmp_path: Path, trial: int) -> None:
    race_api_and_inbox(stack, tmp_path, 20 + 60 * trial)
