"""The services from wheels: start, adopt and restart times, memory, data kept; local vs S3 values.

Each service starts in a fresh home (first start), is adopted by a second start while running,
then stopped and started again on its data, which must still hold what was written before. The
one-host default is the embedded PostgreSQL on its socket plus Valkey, with asset values in a
local folder; ``knowledge up --listen`` adds PostgreSQL over TCP and SeaweedFS. The same asset
values are then written and read through the IO manager on a local folder and on SeaweedFS.
"""

from __future__ import annotations

import contextlib
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg
import psutil
import psycopg2
from pydantic import BaseModel

from bench.common import corpus_paths
from knowledge_assets.db.embedded import EmbeddedPostgres
from knowledge_assets.defs.io_manager import PydanticJsonIOManager
from knowledge_assets.pipeline import stages
from knowledge_assets.pipeline.documents import read_paths
from knowledge_assets.pipeline.object_store import read_object, storage_root, write_object
from knowledge_assets.platform.services.base import ManagedService
from knowledge_assets.platform.services.cluster import ServiceSet
from knowledge_assets.settings import Settings

DOCUMENTS = 200
BLOB_MB = 16
REPEATS = 3


def run() -> dict[str, Any]:
    """Service figures, then the local-vs-S3 comparison on the running SeaweedFS."""
    figures: dict[str, Any] = {"benchmark": "services"}
    with tempfile.TemporaryDirectory(prefix="kbv-", dir="/tmp") as root:
        figures.update(_embedded(Path(root) / "embedded"))
        services = ServiceSet(Path(root) / "home", database=True, storage=True)
        try:
            figures.update(_lifecycle(services))
            figures.update(_storage(services, Path(root) / "local"))
        finally:
            services.stop()
    figures["one_host_start_s"] = round(
        figures["embedded_postgres_first_start_s"] + figures["first_start_s"]["valkey"], 2
    )
    figures["serving_hosts_start_s"] = round(sum(figures["first_start_s"].values()), 2)
    return figures


def _embedded(pgdata: Path) -> dict[str, Any]:
    pgdata.parent.mkdir(parents=True)
    server = EmbeddedPostgres(pgdata)
    began = time.perf_counter()
    try:
        url = server.start()
        first = time.perf_counter() - began
        with contextlib.closing(psycopg2.connect(url.replace("+psycopg2", ""))) as connection:
            cursor = connection.cursor()
            cursor.execute("SHOW idle_in_transaction_session_timeout")
            timeout = cursor.fetchone()[0]
    finally:
        server.stop()
    return {
        "embedded_postgres_first_start_s": round(first, 2),
        "embedded_idle_in_transaction_timeout": timeout,
    }


def _lifecycle(services: ServiceSet) -> dict[str, Any]:
    first = {name: round(r.seconds, 2) for name, r in services.start().items()}
    _write_marks(services)
    adopted = {name: round(r.seconds, 3) for name, r in services.start().items()}
    rss = {s.name: _tree_rss_mb(s) for s in services.services}
    restarted: dict[str, float] = {}
    for service in services.services:
        service.stop()
        restarted[service.name] = round(service.start().seconds, 2)
    return {
        "first_start_s": first,
        "adopt_running_s": adopted,
        "stop_then_start_s": restarted,
        "idle_rss_mb": rss,
        "data_kept_after_restart": _read_marks(services),
    }


def _write_marks(services: ServiceSet) -> None:
    assert services.postgres and services.valkey and services.seaweed
    with contextlib.closing(psycopg2.connect(services.postgres.socket_dsn())) as connection:
        with connection.cursor() as cursor:
            cursor.execute("CREATE TABLE bench_mark (v text)")
            cursor.execute("INSERT INTO bench_mark VALUES ('kept')")
        connection.commit()
    services.valkey.client().set("bench_mark", "kept")
    write_object(_s3_root(services) / "bench" / "mark.txt", b"kept")


def _read_marks(services: ServiceSet) -> dict[str, bool]:
    assert services.postgres and services.valkey and services.seaweed
    connection = psycopg2.connect(services.postgres.socket_dsn())
    with contextlib.closing(connection), connection.cursor() as cursor:
        cursor.execute("SELECT v FROM bench_mark")
        row = cursor.fetchone()
    return {
        "postgres": row == ("kept",),
        "valkey": services.valkey.client().get("bench_mark") == b"kept",
        "seaweedfs": read_object(_s3_root(services) / "bench" / "mark.txt") == b"kept",
    }


def _s3_root(services: ServiceSet) -> Any:
    variables = services.environment()
    settings = Settings(
        storage_url=variables["KNOWLEDGE_STORAGE_URL"],
        storage_endpoint=variables["KNOWLEDGE_STORAGE_ENDPOINT"],
        storage_key=variables["KNOWLEDGE_STORAGE_KEY"],
        storage_secret=variables["KNOWLEDGE_STORAGE_SECRET"],
    )
    return storage_root(settings)


def _tree_rss_mb(service: ManagedService) -> float:
    pid = service.running_pid()
    if pid is None:
        return 0.0
    process = psutil.Process(pid)
    tree = [process, *process.children(recursive=True)]
    return round(sum(p.memory_info().rss for p in tree) / 2**20, 1)


def _storage(services: ServiceSet, local: Path) -> dict[str, Any]:
    """The IO manager on a batch's first values, and one large object, local vs SeaweedFS."""
    items, _ = read_paths(corpus_paths(DOCUMENTS))
    documents = stages.prepare(items, max_bytes=5_000_000)
    values: dict[str, BaseModel] = {
        "documents": documents,
        "chunks": stages.chunk(documents, max_chars=1500),
    }
    blob = bytes(BLOB_MB * 2**20)
    figures: dict[str, Any] = {"storage_values": f"documents + chunks of {DOCUMENTS} documents"}
    for name, root in (("local", local), ("s3", _s3_root(services) / "bench-io")):
        io = PydanticJsonIOManager(base_path=str(root))
        figures[f"values_write_s_{name}"] = _median(lambda io=io: _write_values(io, values))
        figures[f"values_read_s_{name}"] = _median(lambda io=io: _read_values(io, values))
        target = root / "blob.bin"
        figures[f"blob_{BLOB_MB}mb_write_s_{name}"] = _median(
            lambda t=target: write_object(t, blob)
        )
        figures[f"blob_{BLOB_MB}mb_read_s_{name}"] = _median(lambda t=target: read_object(t))
    shutil.rmtree(local, ignore_errors=True)
    return figures


def _write_values(io: PydanticJsonIOManager, values: dict[str, BaseModel]) -> None:
    for asset, value in values.items():
        io.handle_output(
            dg.build_output_context(asset_key=dg.AssetKey(asset), partition_key="b"), value
        )


def _read_values(io: PydanticJsonIOManager, values: dict[str, BaseModel]) -> None:
    for asset in values:
        io.load_input(dg.build_input_context(asset_key=dg.AssetKey(asset), partition_key="b"))


def _median(action: Callable[[], object]) -> float:
    times = []
    for _ in range(REPEATS):
        began = time.perf_counter()
        action()
        times.append(time.perf_counter() - began)
    return round(statistics.median(times), 3)
