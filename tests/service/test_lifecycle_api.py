"""Deleting through the API: DELETE /documents/{id}, followed at GET /deletions/{id}.

A platform of its own (database, daemon, API server): the deletions change the graph that the
session's shared platform serves to other tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import sqlalchemy as sa

from knowledge_assets.db import tables as t
from knowledge_assets.db.admin import create_database, drop_database
from knowledge_assets.db.engine import engine_for
from knowledge_assets.pipeline.pipeline import ExtractionPipeline
from knowledge_assets.pipeline.registry import sync_registry
from knowledge_assets.settings import Settings
from tests.lifecycle import (
    MARKER,
    comparable,
    demo_inputs,
    differences,
    dump_containing,
    files_containing,
    marked,
    registry_settled,
    tables_containing,
)
from tests.processes import DagsterDaemon, wait_until
from tests.service.conftest import wait_for_state
from tests.service.server import ApiServer, auth

A = ["harbor-energy-ceo.txt", "northwind-acquisition.txt", "port-strike.txt"]
B = ["research-lab.txt", "summit-geneva.txt"]


class Own:
    """A platform of this module's own: its environment is the test process's too."""

    def __init__(self, root: Path, url: str, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root, self.url = root, url
        for key, value in {
            "KNOWLEDGE_HOME": str(root / "home"),
            "KNOWLEDGE_DATABASE_URL": url,
            "DAGSTER_HOME": str(root / "home" / "dagster"),
        }.items():
            monkeypatch.setenv(key, value)
        self.env = dict(os.environ)
        self.settings = Settings()
        self.server = ApiServer(self.env, root / "logs" / "api.log")
        self.daemon = DagsterDaemon(self.settings)


@pytest.fixture
def own(admin_url: str, broker_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Own]:
    """The platform; ``broker_url`` (set in the environment first) is its workers' own queue."""
    root = Path(tempfile.mkdtemp(prefix="klife-", dir="/tmp"))
    url = create_database(admin_url)
    platform = Own(root, url, monkeypatch)
    platform.server.start()
    platform.daemon.start()
    try:
        yield platform
    finally:
        platform.server.stop()
        platform.daemon.stop()
        engine_for(url).dispose()
        drop_database(url)
        shutil.rmtree(root, ignore_errors=True)


def submit(own: Own, documents: list[tuple[str, str]]) -> str:
    body = {"documents": [{"id": name, "text": text} for name, text in documents]}
    response = httpx.post(f"{own.server.url}/batches", json=body, headers=auth(), timeout=60)
    assert response.status_code == 202, response.text
    batch_id: str = response.json()["batch_id"]
    wait_for_state(own.server.url, batch_id, {"complete"})
    return batch_id


def delete(own: Own, name: str) -> dict[str, Any]:
    url = f"{own.server.url}/documents/{quote(name)}"
    response = httpx.delete(url, headers=auth(), timeout=60)
    assert response.status_code == 202, response.text
    deletion = response.json()
    deadline = time.monotonic() + 300
    while deletion["state"] not in ("complete", "failed") and time.monotonic() < deadline:
        time.sleep(0.5)
        deletion = httpx.get(
            f"{own.server.url}{deletion['url']}", headers=auth(), timeout=30
        ).json()
    return deletion


def texts(*names: str) -> list[tuple[str, str]]:
    corpus = demo_inputs()
    return [(n, corpus[n].data.decode()) for n in names]


def test_deleting_b_through_the_api_leaves_a_fresh_build_of_a(own: Own, reference_url: str) -> None:
    a = texts(*A)
    tagged = marked("He works for Harbor Energy in Rotterdam.")
    b = [*texts(*B), (tagged.name, tagged.data.decode())]
    submit(own, a)
    second = submit(own, b)
    missing = httpx.delete(f"{own.server.url}/documents/nowhere.txt", headers=auth(), timeout=30)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "document_not_found"

    for name, _ in b:
        deletion = delete(own, name)
        assert deletion["state"] == "complete", deletion
        assert deletion["documents"] == [name]
        assert deletion["counts"]["rows_retracted"] > 0
        assert deletion["dagster_url"].endswith(f"partition={deletion['deletion_id']}")

    engine = engine_for(own.url)
    wait_until(lambda: registry_settled(engine), 120)
    reference = ExtractionPipeline(own.settings.model_copy(update={"database_url": reference_url}))
    reference.run(demo_documents := [demo_inputs()[n] for n in A])
    sync_registry(reference.engine, reference.ontology)
    assert demo_documents
    got, expected = comparable(engine), comparable(engine_for(reference_url))
    assert got == expected, differences(got, expected)

    assert files_containing(own.settings.home, MARKER) == []
    assert tables_containing(engine, MARKER) == []
    assert not dump_containing(own.url, MARKER)
    for fmt in ("ttl", "jsonld"):
        graph = httpx.get(f"{own.server.url}/graph?format={fmt}", headers=auth(), timeout=60)
        assert graph.status_code == 200 and MARKER not in graph.text
    mentions = subprocess.run(
        [sys.executable, "-m", "knowledge_assets.cli", "export", "--format", "mentions"],
        env=own.env, capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    assert mentions.stdout and MARKER not in mentions.stdout
    gone = httpx.get(f"{own.server.url}/documents/{tagged.name}", headers=auth(), timeout=30)
    assert gone.status_code == 404
    kept = httpx.get(f"{own.server.url}/documents/{A[0]}", headers=auth(), timeout=30)
    assert kept.status_code == 200 and kept.json()["name"] == A[0]
    batch = httpx.get(f"{own.server.url}/batches/{second}", headers=auth(), timeout=30).json()
    assert {d["status"] for d in batch["documents"]} == {"deleted"}


@pytest.mark.slow  # the CLI path of the same refusal runs in make test (test_lifecycle_platform)
def test_deleting_a_document_of_a_queued_batch_is_refused_with_409(own: Own) -> None:
    submit(own, texts(A[0]))
    own.daemon.stop()  # a batch submitted now stays queued: being processed, not done
    own.server.stop()  # stopping the daemon reaps every process of the home: start it again
    own.server.start()
    body = {"documents": [{"id": name, "text": text} for name, text in texts(A[0], A[1])]}
    queued = httpx.post(f"{own.server.url}/batches", json=body, headers=auth(), timeout=60)
    assert queued.status_code == 202
    refused = httpx.delete(f"{own.server.url}/documents/{A[0]}", headers=auth(), timeout=30)
    assert refused.status_code == 409, refused.text
    error = refused.json()["error"]
    assert error["code"] == "document_busy"
    assert queued.json()["batch_id"] in error["message"]
    with engine_for(own.url).connect() as connection:
        versions = connection.execute(sa.select(t.document_versions.c.batch_id)).scalars().all()
    assert not [v for v in versions if v.startswith("d")], "nothing was registered for deletion"
