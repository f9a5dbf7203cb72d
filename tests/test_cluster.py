"""Two workers on "two hosts": batches spread over them, and each kind of failure of one of them.

The workers share nothing but PostgreSQL, Valkey and SeaweedFS (``tests/cluster.py``). Every
batch's documents name people and places no other batch names, so the graph the cluster builds,
batches running in any order, must equal row for row what the direct pipeline builds.
"""

from __future__ import annotations

import hashlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import httpx
import psycopg2
import pytest
import redis
import sqlalchemy as sa

from knowledge_assets.db import tables as t
from knowledge_assets.db.admin import create_database
from knowledge_assets.db.engine import engine_for, get_engine
from knowledge_assets.defs.io_manager import PydanticJsonIOManager
from knowledge_assets.failpoints import STOP, arm, fired
from knowledge_assets.instance.home import open_instance
from knowledge_assets.orchestration.orchestrator import Orchestrator
from knowledge_assets.orchestration.state import BatchState, BatchStatus
from knowledge_assets.pipeline import stages
from knowledge_assets.pipeline.batches import BatchStorage
from knowledge_assets.pipeline.extractors.factory import extractor_info
from knowledge_assets.pipeline.models import DocumentInput
from knowledge_assets.pipeline.object_store import storage_root
from knowledge_assets.pipeline.ontology import load_ontology
from knowledge_assets.pipeline.pipeline import ExtractionPipeline
from knowledge_assets.pipeline.store import GraphStore
from knowledge_assets.settings import Settings
from tests.cluster import Cluster, netns_available, running_cluster
from tests.durability import run_lease
from tests.processes import wait_until

WORKERS = ("wa", "wb")
NO_NETNS = netns_available()
_FIRST = ["Alma", "Bruno", "Celia", "Dario", "Edda", "Fabio", "Gerda", "Hugo"]
_LAST = ["Lund", "Moreau", "Nagy", "Ortiz", "Park", "Rauch", "Stein", "Toivonen"]
_PLACES = ["Bergen", "Cusco", "Dakar", "Graz", "Kochi", "Malmo"]


def documents(tag: str, count: int, sentences: int = 6) -> list[DocumentInput]:
    """``count`` documents whose names occur in no batch of another ``tag`` (lowercase letters)."""
    items = []
    for d in range(count):
        lines = []
        for s in range(sentences):
            n = d * sentences + s
            person = f"{_FIRST[n % 8]}{tag} {_LAST[(n // 8) % 8]}{tag}"
            other = f"{_FIRST[(n + 3) % 8]}{tag} {_LAST[(n // 5) % 8]}{tag}"
            place = f"{_PLACES[n % 6]}{tag}"
            lines.append(f"{person} met {other} near {place} about report {d} {s}.")
        items.append(
            DocumentInput(name=f"note-{tag}-{d:03d}.txt", data=(" ".join(lines) + "\n").encode())
        )
    return items


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = Path(tmp_path_factory.mktemp("cluster", numbered=True))
    with running_cluster(root, WORKERS, use_netns=NO_NETNS is None) as running:
        yield running


@pytest.fixture(scope="module")
def control(cluster: Cluster) -> Iterator[tuple[Orchestrator, str]]:
    """The control plane's Orchestrator, and the reference database the direct pipeline fills."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in cluster.control_env.items():
            if key.startswith(("KNOWLEDGE_", "DAGSTER_")):
                patch.setenv(key, value)
        reference = create_database(cluster.database_url, prefix="ka_reference")
        with Orchestrator.for_settings(Settings()) as orchestrator:
            yield orchestrator, reference
        engine_for(reference).dispose()


def reference_graph(
    orchestrator: Orchestrator, reference: str, batches: list[list[DocumentInput]]
) -> dict:
    """What the direct pipeline writes for every batch so far (its LLM calls then forgotten)."""
    settings = orchestrator.settings.model_copy(update={"database_url": reference})
    for items in batches:
        ExtractionPipeline(settings).run(items)
    return GraphStore(engine_for(reference)).snapshot()


def terminal(orchestrator: Orchestrator, batch_id: str) -> BatchStatus | None:
    """The batch's final status, or None (also while a service restarts and polls fail)."""
    try:
        status = orchestrator.poll(batch_id)
    except Exception:
        return None
    return status if status.state.terminal else None


def finish(orchestrator: Orchestrator, batch_id: str, timeout: float = 240) -> BatchStatus:
    status = wait_until(lambda: terminal(orchestrator, batch_id), timeout, every=0.3)
    assert isinstance(status, BatchStatus)
    assert status.state == BatchState.COMPLETE, status
    return status


def worker_of(cluster: Cluster, node: str) -> str:
    return next(name for name, worker in cluster.workers.items() if worker.node == node)


def cluster_graph(orchestrator: Orchestrator) -> dict:
    return GraphStore(get_engine(orchestrator.settings)).snapshot()


def chunks_requested(cluster: Cluster, since: int = 0) -> list[str]:
    return [r.chunk_text for r in cluster.fake.requests[since:]]


def test_workers_share_only_the_services_from_network_namespaces_of_their_own(
    cluster: Cluster,
) -> None:
    if NO_NETNS is not None:
        pytest.skip(f"the workers run in this host's network namespace: {NO_NETNS}")
    for name in WORKERS:
        namespace = cluster.namespaces[name]
        assert namespace is not None
        worker = cluster.workers[name]
        assert worker.process is not None
        links = Path(f"/proc/{worker.process.pid}/ns/net").resolve()
        assert links != Path("/proc/self/ns/net").resolve(), "the worker is in a namespace"
        text = (cluster.root / name / "cluster.env").read_text()
        assert "127.0.0.1" not in text and namespace.host_ip in text
        assert str(cluster.root / "control") not in text, "nothing of the control host's home"


def test_every_service_refuses_a_client_without_its_credentials(cluster: Cluster) -> None:
    postgres, valkey, seaweed = (
        cluster.services.postgres,
        cluster.services.valkey,
        cluster.services.seaweed,
    )
    assert postgres is not None and valkey is not None and seaweed is not None
    wrong = postgres.url().replace(postgres.password, "not-the-password").replace("+psycopg2", "")
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        psycopg2.connect(wrong, connect_timeout=5).close()
    anonymous = redis.Redis(port=valkey.port, socket_timeout=2)
    with pytest.raises(redis.AuthenticationError):
        anonymous.ping()
    assert httpx.get(seaweed.endpoint + "/").status_code == 403


def test_asset_values_and_staged_batches_round_trip_through_s3_and_are_forgotten_there(
    cluster: Cluster, control: tuple[Orchestrator, str]
) -> None:
    """What a deletion forgets (a document's bytes, stored values) is gone from S3 too."""
    orchestrator, _ = control
    settings = orchestrator.settings
    assert settings.storage_location.startswith("s3://")
    root = storage_root(settings)
    storage = BatchStorage(root / f"probe-{os.getpid()}")
    items = documents("qz", 2)
    ontology = load_ontology(settings.ontology)
    manifest = storage.stage(
        items,
        max_bytes=10**6,
        ontology_hash=ontology.hash,
        extractor=extractor_info(settings, ontology),
    )
    assert storage.manifest(manifest.batch_id) == manifest
    assert [i.data for i in storage.inputs(manifest)] == [i.data for i in items]
    assert storage.batch_ids_newest_first() == [manifest.batch_id]
    value = stages.prepare(items, max_bytes=10**6)
    io = PydanticJsonIOManager(base_path=str(root / f"probe-{os.getpid()}" / "assets"))
    output = dg.build_output_context(asset_key=dg.AssetKey("documents"), partition_key="b1")
    io.handle_output(output, value)
    loaded = dg.build_input_context(
        asset_key=dg.AssetKey("documents"), partition_key="b1", upstream_output=output
    )
    assert io.load_input(loaded) == value
    assert [m.batch_id for m in storage.manifests()] == [manifest.batch_id]
    values = io.values()
    assert values.drop("documents", "b1") and not values.drop("documents", "b1")
    assert values.read_if_stored("documents", "b1") is None
    first = items[0].data
    assert storage.holds(first)
    blob = hashlib.sha256(first).hexdigest()
    assert storage.forget_blob(blob) and not storage.forget_blob(blob)
    assert not storage.holds(first)


def test_four_batches_spread_over_both_workers_build_the_direct_pipelines_graph(
    cluster: Cluster, control: tuple[Orchestrator, str]
) -> None:
    orchestrator, reference = control
    batches = [documents(tag, 8) for tag in ("qa", "qb", "qc", "qd")]
    expected = reference_graph(orchestrator, reference, batches)
    ids = [orchestrator.submit(items).batch_id for items in batches]
    done = [finish(orchestrator, batch_id) for batch_id in ids]
    nodes = {status.workers[status.runs[-1]] for status in done}
    assert nodes == {cluster.workers[name].node for name in WORKERS}, nodes
    assert all(len(status.runs) == 1 for status in done)
    assert cluster_graph(orchestrator) == expected


def test_kill_9_of_a_workers_process_group_mid_extraction_finishes_on_the_other_worker(
    cluster: Cluster, control: tuple[Orchestrator, str]
) -> None:
    kill_trial(cluster, control, "qe")


def kill_trial(cluster: Cluster, control: tuple[Orchestrator, str], tag: str) -> None:
    """kill -9 the worker running a batch mid-extraction; the other one finishes it."""
    orchestrator, reference = control
    items = documents(tag, 30)
    expected = reference_graph(orchestrator, reference, [items])
    mark = len(cluster.fake.requests)
    batch_id = orchestrator.submit(items).batch_id
    wait_until(lambda: len(cluster.fake.requests) - mark >= 40, 120, every=0.05)
    run_id = orchestrator.run_ids(batch_id)[-1]
    victim = worker_of(cluster, run_lease(orchestrator.settings, run_id).node)
    cluster.workers[victim].kill()
    killed_at, calls_at_kill = time.monotonic(), len(cluster.fake.requests)
    checkpointed = cached_chunks(orchestrator)

    done = finish(orchestrator, batch_id, timeout=120)
    assert time.monotonic() - killed_at < 60, "completed on the other worker within a minute"
    survivor = next(name for name in WORKERS if name != victim)
    assert done.workers[done.runs[-1]] == cluster.workers[survivor].node
    assert len(done.runs) == 2 and done.progress.chunks_reused > 0
    redone = [t for t in chunks_requested(cluster, calls_at_kill) if sha(t) in checkpointed]
    assert redone == [], "checkpointed chunks were sent to the LLM again"
    assert cluster_graph(orchestrator) == expected
    cluster.start_worker(victim).wait_ready()


def test_a_worker_frozen_mid_ingest_writes_nothing_after_its_run_was_retried_elsewhere(
    cluster: Cluster, control: tuple[Orchestrator, str]
) -> None:
    freeze_trial(cluster, control, "qf")


def freeze_trial(cluster: Cluster, control: tuple[Orchestrator, str], tag: str) -> None:
    """SIGSTOP the worker whose run holds the ingest; after SIGCONT it must write nothing."""
    orchestrator, reference = control
    items = documents(tag, 6)
    expected = reference_graph(orchestrator, reference, [items])
    point = "ingested_graph.commit"  # inside the ingest transaction, its rows written, uncommitted
    arm(cluster.failpoints, point, STOP)
    batch_id = orchestrator.submit(items).batch_id
    wait_until(lambda: fired(cluster.failpoints, point), 180, every=0.1)
    stale_run = orchestrator.run_ids(batch_id)[-1]
    frozen = worker_of(cluster, run_lease(orchestrator.settings, stale_run).node)
    cluster.workers[frozen].signal_group(signal.SIGSTOP)  # the whole worker, like a lost host
    try:
        done = finish(orchestrator, batch_id, timeout=180)
        retry = done.runs[-1]
        assert retry != stale_run and done.workers[retry] != cluster.workers[frozen].node
    finally:
        cluster.workers[frozen].signal_group(signal.SIGCONT)
    assert cluster_graph(orchestrator) == expected
    time.sleep(5)  # the woken attempt runs on into its commit, which must fail
    assert cluster_graph(orchestrator) == expected
    with open_instance(orchestrator.settings) as instance:
        stale = instance.get_run_by_id(stale_run)
        assert stale is not None and stale.status == dg.DagsterRunStatus.FAILURE
        materialized = instance.get_records_for_run(
            stale_run, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
        ).records
        keys = {r.event_log_entry.dagster_event.asset_key.to_user_string() for r in materialized}  # type: ignore[union-attr]
    assert "ingested_graph" not in keys, "the stale attempt recorded an ingest"
    for leftover in cluster.failpoints.iterdir():
        leftover.unlink()


def test_valkey_and_the_object_store_restarted_mid_run_lose_nothing(
    cluster: Cluster, control: tuple[Orchestrator, str]
) -> None:
    orchestrator, reference = control
    first, during, last = documents("qg", 20), documents("qh", 6), documents("qi", 20)
    expected = reference_graph(orchestrator, reference, [first, during, last])
    valkey, seaweed = cluster.services.valkey, cluster.services.seaweed
    assert valkey is not None and seaweed is not None
    mark = len(cluster.fake.requests)
    ids = [orchestrator.submit(first).batch_id]
    wait_until(lambda: len(cluster.fake.requests) - mark >= 10, 120, every=0.05)
    valkey.stop()
    ids.append(orchestrator.submit(during).batch_id)  # queued while the broker is away
    time.sleep(3)
    valkey.start()

    mark = len(cluster.fake.requests)
    ids.append(orchestrator.submit(last).batch_id)
    wait_until(lambda: len(cluster.fake.requests) - mark >= 10, 120, every=0.05)
    seaweed.kill()  # values and staged documents are read and written on both sides of this
    time.sleep(2)
    seaweed.start()

    done = [finish(orchestrator, batch_id, timeout=300) for batch_id in ids]
    for status, items in zip(done, (first, during, last), strict=True):
        assert {d.status for d in status.documents} == {"accepted"}
        assert status.progress.documents == len(items)
    assert cluster_graph(orchestrator) == expected


@pytest.mark.slow
@pytest.mark.parametrize("tag", ["ka", "kb", "kc"])
def test_kill_9_trials_repeated(
    cluster: Cluster, control: tuple[Orchestrator, str], tag: str
) -> None:
    kill_trial(cluster, control, tag)


@pytest.mark.slow
@pytest.mark.parametrize("tag", ["sa", "sb", "sc"])
def test_freeze_trials_repeated(
    cluster: Cluster, control: tuple[Orchestrator, str], tag: str
) -> None:
    freeze_trial(cluster, control, tag)


def test_a_worker_names_its_node_and_stops_cleanly_on_sigterm(cluster: Cluster) -> None:
    worker = cluster.workers[WORKERS[1]]
    assert f"worker node {worker.node}" in worker.log()
    assert worker.process is not None
    before = len(worker.log())
    os.kill(worker.process.pid, signal.SIGTERM)  # its main process, as a service manager does
    assert worker.process.wait(timeout=60) == 0
    shutdown = worker.log()[before:]
    assert "Warm shutdown" in shutdown and "Traceback" not in shutdown


def cached_chunks(orchestrator: Orchestrator) -> set[str]:
    with get_engine(orchestrator.settings).connect() as connection:
        return set(connection.execute(sa.select(t.extraction_cache.c.chunk_sha256)).scalars())


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
