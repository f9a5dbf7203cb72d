"""One platform for every API test: a database, a real daemon and a real API server process.

Session-scoped on purpose: starting a daemon and running a batch costs tens of seconds, and the
tests only read what that batch left (or submit new batches of their own).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from knowledge_assets.db.admin import create_database, drop_database
from knowledge_assets.db.engine import engine_for
from knowledge_assets.demo import corpus_files
from knowledge_assets.platform.services.valkey import ValkeyService
from knowledge_assets.settings import Settings
from tests.conftest import SESSION_BROKER_DATABASES, empty_broker
from tests.processes import DagsterDaemon
from tests.service.server import ApiServer, auth


@dataclass
class Stack:
    """The running platform and the id of a batch that has run to Complete on it."""

    settings: Settings
    env: dict[str, str]
    server: ApiServer
    batch_id: str
    root: Path

    @property
    def url(self) -> str:
        return self.server.url

    def new_server(self, name: str) -> ApiServer:
        return ApiServer(self.env, self.root / "logs" / f"{name}.log")


def demo_documents() -> list[dict[str, str]]:
    return [{"id": p.name, "text": p.read_text(encoding="utf-8")} for p in corpus_files()]


def wait_for_state(url: str, batch_id: str, states: set[str], timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = httpx.get(f"{url}/batches/{batch_id}", headers=auth(), timeout=30).json()
        if body["state"] in states:
            return body
        time.sleep(0.5)
    raise AssertionError(f"batch {batch_id} not in {states} after {timeout} s: {body}")


def _environment(root: Path, database_url: str, **extra: str) -> dict[str, str]:
    """The environment of a test platform under ``root``: small limits, a fast heartbeat."""
    return dict(
        os.environ,
        KNOWLEDGE_HOME=str(root / "home"),
        KNOWLEDGE_DATABASE_URL=database_url,
        DAGSTER_HOME=str(root / "home" / "dagster"),
        KNOWLEDGE_API_MAX_UPLOAD_BYTES="1000000",
        KNOWLEDGE_API_STREAM_HEARTBEAT_S="1",
        **extra,
    )


@pytest.fixture(scope="session")
def stack(admin_url: str, valkey: ValkeyService) -> Iterator[Stack]:
    root = Path(tempfile.mkdtemp(prefix="kapi-", dir="/tmp"))
    url = create_database(admin_url)
    env = _environment(
        root,
        url,
        KNOWLEDGE_BROKER_URL=empty_broker(valkey, SESSION_BROKER_DATABASES[0]),
        KNOWLEDGE_API_MAX_STREAMS_PER_TOKEN="4",
        KNOWLEDGE_API_STREAM_SEND_TIMEOUT_S="2",
        # Far fewer than the frozen-client test's events: its readers replay, then hand over.
        KNOWLEDGE_API_STREAM_KEEP_EVENTS="500",
        KNOWLEDGE_FAILPOINTS=str(root / "failpoints"),
    )
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            if key.startswith(("KNOWLEDGE_", "DAGSTER_")):
                patch.setenv(key, value)
        settings = Settings()
        server = ApiServer(env, root / "logs" / "api.log").start()
        daemon = DagsterDaemon(settings).start()
        try:
            response = httpx.post(
                f"{server.url}/batches", json={"documents": demo_documents()}, headers=auth()
            )
            assert response.status_code == 202, response.text
            batch_id = response.json()["batch_id"]
            wait_for_state(server.url, batch_id, {"complete"})
            yield Stack(settings, env, server, batch_id, root)
        finally:
            server.stop()
            daemon.stop()
            engine_for(url).dispose()
            drop_database(url)
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def bare(admin_url: str) -> Iterator[ApiServer]:
    """An API server on its own database with no daemon: submitted batches stay queued.

    For tests that submit many (hostile or generated) batches without making the machine run them.
    """
    root = Path(tempfile.mkdtemp(prefix="kbare-", dir="/tmp"))
    url = create_database(admin_url)
    env = _environment(root, url)
    server = ApiServer(env, root / "logs" / "api.log").start()
    try:
        yield server
    finally:
        server.stop()
        engine_for(url).dispose()
        drop_database(url)
        shutil.rmtree(root, ignore_errors=True)
