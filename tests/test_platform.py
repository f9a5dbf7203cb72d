"""`knowledge up --demo` as a user runs it: real webserver, daemon, sensor and launched runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from knowledge_assets.db.engine import engine_for
from knowledge_assets.demo import CORPUS_DIR
from knowledge_assets.pipeline.pipeline import ExtractionPipeline
from knowledge_assets.pipeline.registry import merge_new_batches
from knowledge_assets.pipeline.store import GraphStore
from knowledge_assets.settings import Settings
from tests.conftest import free_port, fresh_database

ASSETS_QUERY = """{ assetNodes { assetKey { path } partitionDefinition { name } } }"""
MATERIALIZATIONS = """
query ($path: [String!]!) {
  assetOrError(assetKey: {path: $path}) {
    ... on Asset { assetMaterializations(limit: 20) { partition runId } }
  }
}"""
RUNS = """
query ($batch: String!) {
  runsOrError(filter: {tags: [{key: "dagster/partition", value: $batch}]}) {
    ... on Runs { results { runId status tags { key value } } }
  }
}"""


class Platform:
    """A `knowledge up --demo` subprocess and the GraphQL endpoint of its webserver."""

    def __init__(self, home: Path, database_url: str) -> None:
        self.home = home
        self.port = free_port()
        self.api_port = free_port()
        self.env = dict(
            os.environ,
            KNOWLEDGE_HOME=str(home),
            KNOWLEDGE_DATABASE_URL=database_url,
            KNOWLEDGE_UI_PORT=str(self.port),
            KNOWLEDGE_API_PORT=str(self.api_port),
        )
        # `knowledge up` starts Valkey, as for a user: a broker inherited from another test's
        # stack would hand this platform's runs to that stack's worker.
        self.env.pop("KNOWLEDGE_BROKER_URL", None)
        home.mkdir(parents=True, exist_ok=True)
        self.log = (home / "up.log").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "knowledge_assets.cli", "up", "--demo"],
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def graphql(self, query: str, **variables: Any) -> dict[str, Any]:
        response = httpx.post(
            f"http://127.0.0.1:{self.port}/graphql",
            json={"query": query, "variables": variables},
            timeout=30,
        )
        response.raise_for_status()
        return response.json()["data"]

    def wait_for(self, predicate: Any, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "knowledge up exited early"
            try:
                value = predicate()
            except httpx.HTTPError:
                value = None
            if value:
                return value
            time.sleep(1)
        raise AssertionError(f"timed out after {timeout}s")

    def materialized(self, asset: str) -> list[dict[str, Any]]:
        data = self.graphql(MATERIALIZATIONS, path=[asset])
        return data["assetOrError"].get("assetMaterializations") or []

    def banner(self) -> str:
        return (self.home / "up.log").read_text(encoding="utf-8", errors="replace")

    def stop(self) -> list[psutil.Process]:
        children = psutil.Process(self.process.pid).children(recursive=True)
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=60)
        self.log.close()
        _gone, alive = psutil.wait_procs(children, timeout=30)
        return [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]


@pytest.fixture
def two_databases(admin_url: str) -> Iterator[tuple[str, str]]:
    with fresh_database(admin_url) as first, fresh_database(admin_url) as second:
        yield first, second


def test_demo_batch_runs_through_the_daemon_like_the_direct_pipeline(
    tmp_path: Path, two_databases: tuple[str, str]
) -> None:
    platform_db, direct_db = two_databases
    platform = Platform(tmp_path / "platform", platform_db)
    try:
        nodes = platform.wait_for(lambda: platform.graphql(ASSETS_QUERY)["assetNodes"], 120)
        assert {n["assetKey"]["path"][0] for n in nodes} == {
            "documents", "chunks", "extractions", "resolved_entities",
            "validated_graph", "ingested_graph", "canonical_entities", "document_deletions",
        }  # fmt: skip

        # Side by side: the direct pipeline writes the same batch into the same database.
        beside = Settings(home=tmp_path / "beside", database_url=platform_db)
        batch_id = ExtractionPipeline(beside).run_paths([CORPUS_DIR]).batch_id

        done = platform.wait_for(lambda: platform.materialized("ingested_graph"), 240)
        assert [m["partition"] for m in done] == [batch_id]
        platform.wait_for(lambda: platform.materialized("canonical_entities"), 120)
        # The API came up with a generated token, kept in the home, and sees the same batch.
        token = (tmp_path / "platform" / "api_token").read_text().strip()
        listed = httpx.get(
            f"http://127.0.0.1:{platform.api_port}/batches",
            headers={"Authorization": f"Bearer {token}"},
        ).json()
        assert [(b["batch_id"], b["state"]) for b in listed["items"]] == [(batch_id, "complete")]
        (run,) = platform.graphql(RUNS, batch=batch_id)["runsOrError"]["results"]
        tags = {t["key"]: t["value"] for t in run["tags"]}
        assert run["status"] == "SUCCESS"
        assert tags["dagster/sensor_name"] == "inbox_sensor"

        alone = Settings(home=tmp_path / "alone", database_url=direct_db)
        assert ExtractionPipeline(alone).run_paths([CORPUS_DIR]).batch_id == batch_id
        platform_store = GraphStore(engine_for(platform_db))
        assert platform_store.snapshot() == GraphStore(engine_for(direct_db)).snapshot()

        settings = Settings(home=tmp_path / "check", database_url=platform_db)
        pipeline = ExtractionPipeline(settings)
        again = merge_new_batches(pipeline.engine, pipeline.ontology)
        assert again.batches == []
    finally:
        survivors = platform.stop()
    assert platform.process.returncode == 0
    assert survivors == []

    # Started again on the same home: the data is reused and the demo batch is not run twice.
    restarted = Platform(tmp_path / "platform", platform_db)
    try:
        restarted.wait_for(lambda: restarted.graphql(ASSETS_QUERY)["assetNodes"], 120)
        assert [m["partition"] for m in restarted.materialized("ingested_graph")] == [batch_id]
        inbox = tmp_path / "platform" / "inbox"
        # The demo files were submitted before: nothing is dropped again, and the banner says so.
        assert not [p for p in inbox.iterdir() if p.name[0] != "."]
        restarted.wait_for(lambda: "nothing dropped" in restarted.banner(), 60)
        archived = inbox / ".submitted" / batch_id
        runs = restarted.graphql(RUNS, batch=batch_id)["runsOrError"]["results"]
        assert len(runs) == 1
        assert sorted(p.name for p in archived.iterdir()) == sorted(
            p.name for p in CORPUS_DIR.glob("*.txt")
        )
    finally:
        assert restarted.stop() == []
