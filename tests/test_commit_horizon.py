"""The event-log horizon against real PostgreSQL: out-of-order commits, rollbacks, stuck writers.

Each test plays concurrent writers on separate connections of Dagster's own ``event_logs``
table, the way the run worker and the daemon write it, and checks the horizon never passes an
id that may still be committed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from knowledge_assets.orchestration.commit_horizon import CommitHorizon

_INSERT = sa.text(
    "INSERT INTO event_logs (run_id, event, timestamp) VALUES ('r', '{}', now()) RETURNING id"
)


@pytest.fixture
def engine(dagster_instance: object, database_url: str) -> Iterator[sa.Engine]:
    """An engine on a database where Dagster has created its event-log tables."""
    engine = sa.create_engine(database_url)
    try:
        yield engine
    finally:
        engine.dispose()


def insert(connection: sa.Connection) -> int:
    return int(connection.execute(_INSERT).scalar_one())


def committed(engine: sa.Engine) -> int:
    with engine.begin() as connection:
        return insert(connection)


def ready(engine: sa.Engine, timeout_s: float = 30.0) -> CommitHorizon:
    horizon = CommitHorizon(engine, gap_timeout_s=timeout_s)
    horizon.advance()
    horizon.advance()  # the start-up barrier clears once the transactions open then have ended
    return horizon


def allocate_without_xid(connection: sa.Connection) -> tuple[sa.RootTransaction, int]:
    """An id from ``nextval`` in an open transaction that has no xid yet.

    ``nextval`` takes an xid only when it WAL-logs the sequence (every 32 values), so a retry
    lands in the common case.
    """
    for _ in range(3):
        transaction = connection.begin()
        allocated = int(connection.execute(sa.text("SELECT nextval('event_logs_id_seq')")).scalar())
        xid = connection.execute(sa.text("SELECT pg_current_xact_id_if_assigned()")).scalar()
        if xid is None:
            return transaction, allocated
        transaction.rollback()
    raise AssertionError("nextval assigned an xid three times in a row")


def test_the_id_sequence_hands_out_values_in_order(engine: sa.Engine) -> None:
    with engine.connect() as connection:
        cache = connection.execute(
            sa.text(
                "SELECT cache_size FROM pg_sequences WHERE format('%I.%I', schemaname,"
                " sequencename) = pg_get_serial_sequence('event_logs', 'id')"
            )
        ).scalar_one()
    assert cache == 1


def test_contiguous_ids_move_the_horizon_at_once(engine: sa.Engine) -> None:
    horizon = ready(engine)
    ids = [committed(engine) for _ in range(3)]
    assert horizon.advance() == ids[-1]


def test_a_higher_id_committed_first_does_not_pass_the_lower_one(engine: sa.Engine) -> None:
    horizon = ready(engine)
    before = horizon.value
    with engine.connect() as slow:
        transaction = slow.begin()
        low = insert(slow)
        high = committed(engine)
        assert high > low
        for _ in range(5):
            assert horizon.advance() < low
            time.sleep(0.05)
        transaction.commit()
    assert horizon.advance() >= high or horizon.advance() >= high
    assert before < low


def test_a_writer_between_nextval_and_its_xid_still_holds_the_horizon(engine: sa.Engine) -> None:
    """Why virtual transaction ids: after ``nextval`` a writer has no xid for snapshots to show."""
    horizon = ready(engine)
    with engine.connect() as slow:
        transaction, low = allocate_without_xid(slow)
        high = committed(engine)
        with engine.connect() as observer:
            in_flight = observer.execute(sa.text("SELECT pg_current_snapshot()::text")).scalar_one()
        assert ":" in in_flight and in_flight.split(":")[2] == ""  # no xid in flight at all
        for _ in range(5):
            assert horizon.advance() < low
            time.sleep(0.05)
        slow.execute(
            sa.text(
                "INSERT INTO event_logs (id, run_id, event, timestamp)"
                " VALUES (:id, 'r', '{}', now())"
            ),
            {"id": low},
        )
        transaction.commit()
    assert max(horizon.advance(), horizon.advance()) >= high


def test_a_rolled_back_id_is_passed_as_soon_as_its_writer_ended(engine: sa.Engine) -> None:
    horizon = ready(engine)
    with engine.connect() as slow:
        transaction = slow.begin()
        low = insert(slow)
        high = committed(engine)
        assert horizon.advance() < low
        transaction.rollback()
    began = time.monotonic()
    while horizon.advance() < high:
        assert time.monotonic() - began < 5, "a rolled-back id held the horizon"
        time.sleep(0.05)


def test_a_long_open_transaction_holds_a_gap_only_for_the_timeout(engine: sa.Engine) -> None:
    horizon = ready(engine, timeout_s=1.0)
    with engine.connect() as idle, engine.connect() as writer:
        idle.begin()
        idle.execute(sa.text("SELECT 1"))  # open, doing nothing: it could be a stuck writer
        transaction = writer.begin()
        low = insert(writer)
        transaction.rollback()
        high = committed(engine)
        began = time.monotonic()
        while horizon.advance() < high:
            assert time.monotonic() - began < 10
            time.sleep(0.05)
        assert time.monotonic() - began >= 0.9
        assert low < high
