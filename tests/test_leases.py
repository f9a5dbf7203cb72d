"""Worker leases: taken once, renewed, revoked when silent, fenced while committing."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
import sqlalchemy as sa

from knowledge_assets.db.engine import get_engine
from knowledge_assets.instance.leases import LeaseBusy, LeaseKeeper, LeaseStore, current_task
from knowledge_assets.settings import Settings


@pytest.fixture
def store(settings: Settings) -> LeaseStore:
    return LeaseStore(get_engine(settings))


def ids() -> tuple[str, str]:
    return str(uuid.uuid4()), str(uuid.uuid4())


def test_a_lease_is_taken_renewed_expires_and_once_revoked_stays_dead(store: LeaseStore) -> None:
    run, task = ids()
    assert store.begin(run, task, "w1@host", 123, ttl_s=0.5)
    lease = store.get(run)
    assert lease is not None and (lease.node, lease.pid, lease.task_id) == ("w1@host", 123, task)
    assert not lease.expired and store.renew(run, task)
    assert not store.revoke(run), "a fresh lease is not revoked"
    time.sleep(0.8)
    assert store.get(run).expired  # type: ignore[union-attr]
    assert store.revoke(run)
    assert store.get(run).revoked  # type: ignore[union-attr]
    assert not store.renew(run, task), "a revoked lease is never renewed back to life"
    assert not store.revoke(run), "revoked once"
    assert store.nodes([run, str(uuid.uuid4())]) == {run: "w1@host"}


def test_a_second_task_never_takes_a_runs_lease(store: LeaseStore) -> None:
    run, task = ids()
    assert store.begin(run, task, "w1@host", 1)
    assert not store.begin(run, "another-task", "w2@host", 2)
    assert store.get(run).node == "w1@host"  # type: ignore[union-attr]


def test_the_fence_holds_only_for_the_live_lease_of_its_own_task(store: LeaseStore) -> None:
    run, task = ids()
    store.begin(run, task, "w1@host", 1)
    with store.engine.begin() as connection:
        assert LeaseStore.fence(connection, run, task) is True
        assert LeaseStore.fence(connection, run, "another-task") is False
        assert LeaseStore.fence(connection, str(uuid.uuid4()), task) is None
    store.finish(run, task)
    with store.engine.begin() as connection:
        assert LeaseStore.fence(connection, run, task) is False


def test_revoking_waits_for_a_committing_fence_which_does_not_stop_renewals(
    store: LeaseStore,
) -> None:
    run, task = ids()
    store.begin(run, task, "w1@host", 1, ttl_s=0.2)
    time.sleep(0.4)
    held, release = threading.Event(), threading.Event()

    def ingest() -> None:
        with store.engine.begin() as connection:
            assert LeaseStore.fence(connection, run, task)
            held.set()
            release.wait(10)

    committing = threading.Thread(target=ingest)
    committing.start()
    try:
        assert held.wait(10)
        with pytest.raises(LeaseBusy):
            store.revoke(run, lock_timeout_ms=300)
        # The same worker's keeper thread renews beside its own committing transaction.
        assert store.renew(run, task)
    finally:
        release.set()
        committing.join()
    time.sleep(0.4)
    assert store.revoke(run)


def test_the_keeper_renews_while_the_run_executes_and_finishes_the_lease(
    store: LeaseStore,
) -> None:
    run, task = ids()
    store.begin(run, task, "w1@host", 1, ttl_s=0.6)
    with LeaseKeeper(store, run, task, renew_s=0.1):
        assert current_task(run) == task
        time.sleep(1.0)
        lease = store.get(run)
        assert lease is not None and not lease.expired, "renewed past its time to live"
    assert current_task(run) is None
    assert store.get(run).finished  # type: ignore[union-attr]


def test_the_keeper_stops_renewing_a_revoked_lease(store: LeaseStore) -> None:
    run, task = ids()
    store.begin(run, task, "w1@host", 1)
    with LeaseKeeper(store, run, task, renew_s=0.05) as keeper:
        store.revoke(run, force=True)
        keeper._thread.join(timeout=5)
        assert not keeper._thread.is_alive()


def test_the_lease_table_is_ours(store: LeaseStore) -> None:
    with store.engine.connect() as connection:
        schema = connection.execute(
            sa.text("SELECT table_schema FROM information_schema.tables "
                    "WHERE table_name = 'worker_leases'")
        ).scalar_one()  # fmt: skip
    assert schema == "knowledge"
