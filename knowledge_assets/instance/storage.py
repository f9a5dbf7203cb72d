"""dagster-postgres storages that reuse connections: a small pool, pinged before each checkout.

dagster-postgres opens a new PostgreSQL session for every query (``NullPool``) and dagster.yaml
offers no pool option, so a run on PostgreSQL pays a connection handshake per event write. These
subclasses rebuild the engine with a small ``QueuePool``. ``pool_pre_ping`` keeps durability: a
connection left dead by a database restart is replaced at checkout instead of failing the run.

Configured in dagster.yaml as ``storage: custom: {module: knowledge_assets.instance.storage,
class: PooledPostgresStorage, config: {...}}``; the config is dagster-postgres's own plus
``pool_size`` and ``max_overflow``. Every process holding an instance holds up to
``3 x (pool_size + max_overflow)`` connections: size ``max_connections`` for all of them.

This module is the only place that relies on dagster-postgres internals (the ``_engine`` and
``_token_provider`` attributes); ``tests/test_postgres_storage.py`` checks them against the pinned
release.
"""

import os
import weakref
from collections.abc import Mapping
from typing import Any, cast

import dagster as dg
import sqlalchemy as sa
from dagster_postgres import (
    DagsterPostgresStorage,
    PostgresEventLogStorage,
    PostgresRunStorage,
    PostgresScheduleStorage,
)
from dagster_postgres.utils import (
    create_pg_engine,
    get_token_provider_from_config,
    pg_config,
    pg_url_from_config,
)

from knowledge_assets.instance.dagster_internals import (
    ConfigurableClassData,
    UserConfigSchema,
    run_storage_of,
)

__all__ = [
    "PooledPostgresEventLogStorage",
    "PooledPostgresRunStorage",
    "PooledPostgresScheduleStorage",
    "PooledPostgresStorage",
    "runs_engine",
]

POOL_SIZE = 2
MAX_OVERFLOW = 4
# Longer than any step, shorter than typical server/proxy idle timeouts.
POOL_RECYCLE_S = 1800

_engines: "weakref.WeakSet[sa.Engine]" = weakref.WeakSet()


def _forget_inherited_connections() -> None:
    # A forked child must not share its parent's sockets: drop them without closing them.
    for engine in list(_engines):
        engine.dispose(close=False)


os.register_at_fork(after_in_child=_forget_inherited_connections)


def pooled_config() -> UserConfigSchema:
    """dagster-postgres's storage config plus the pool's size."""
    return {
        **cast(Mapping[str, Any], pg_config()),
        "pool_size": dg.Field(dg.IntSource, is_required=False, default_value=POOL_SIZE),
        "max_overflow": dg.Field(dg.IntSource, is_required=False, default_value=MAX_OVERFLOW),
    }


def pooled_engine(url: str, token_provider: Any, *, pool_size: int, max_overflow: int) -> sa.Engine:
    """An AUTOCOMMIT engine (as dagster-postgres expects) with a small pre-pinged pool."""
    engine = create_pg_engine(
        url,
        token_provider,
        isolation_level="AUTOCOMMIT",
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_pre_ping=True,
        pool_recycle=POOL_RECYCLE_S,
    )
    _engines.add(engine)
    return engine


def _options(config_value: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "postgres_url": pg_url_from_config(config_value),
        "should_autocreate_tables": config_value.get("should_autocreate_tables", True),
        "token_provider": get_token_provider_from_config(config_value),
        "pool_size": config_value.get("pool_size", POOL_SIZE),
        "max_overflow": config_value.get("max_overflow", MAX_OVERFLOW),
    }


class _Pooled:
    """Swaps the ``NullPool`` engine its dagster-postgres parent built for a pooled one.

    Listed before the dagster-postgres class, so its ``__init__`` wraps the parent's.
    """

    postgres_url: str
    _engine: sa.Engine
    _token_provider: Any

    def __init__(self, *args: Any, pool_size: int = POOL_SIZE, max_overflow: int = MAX_OVERFLOW,
                 **kwargs: Any) -> None:  # fmt: skip
        super().__init__(*args, **kwargs)
        self._engine.dispose()
        self._engine = pooled_engine(
            self.postgres_url,
            self._token_provider,
            pool_size=pool_size,
            max_overflow=max_overflow,
        )

    @classmethod
    def config_type(cls) -> UserConfigSchema:
        """dagster-postgres's config plus the pool's size."""
        return pooled_config()

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]
    ) -> Any:
        """Built from dagster.yaml."""
        return cls(inst_data=inst_data, **_options(config_value))

    def dispose(self) -> None:
        """Close the pooled connections with the instance."""
        super().dispose()  # type: ignore[misc]
        self._engine.dispose()


class PooledPostgresRunStorage(_Pooled, PostgresRunStorage):
    """Run storage on a pooled engine."""


class PooledPostgresEventLogStorage(_Pooled, PostgresEventLogStorage):
    """Event-log storage on a pooled engine: every event write of a run reuses a session."""


class PooledPostgresScheduleStorage(_Pooled, PostgresScheduleStorage):
    """Schedule and sensor storage on a pooled engine."""


class PooledPostgresStorage(DagsterPostgresStorage):
    """The unified storage of dagster.yaml's ``storage:`` block, made of the pooled storages.

    Run workers rebuild the instance from its serialised reference, which names this class, so
    every process of the platform (daemon, webserver, run and step workers) gets the pool.
    """

    def __init__(
        self,
        postgres_url: str,
        should_autocreate_tables: bool = True,
        inst_data: ConfigurableClassData | None = None,
        token_provider: Any = None,
        pool_size: int = POOL_SIZE,
        max_overflow: int = MAX_OVERFLOW,
    ) -> None:
        self.postgres_url = postgres_url
        self.should_autocreate_tables = should_autocreate_tables
        self._inst_data = inst_data
        common: dict[str, Any] = {
            "should_autocreate_tables": should_autocreate_tables,
            "token_provider": token_provider,
            "pool_size": pool_size,
            "max_overflow": max_overflow,
        }
        self._run_storage = PooledPostgresRunStorage(postgres_url, **common)
        self._event_log_storage = PooledPostgresEventLogStorage(postgres_url, **common)
        self._schedule_storage = PooledPostgresScheduleStorage(postgres_url, **common)
        super(DagsterPostgresStorage, self).__init__()

    @classmethod
    def config_type(cls) -> UserConfigSchema:
        """dagster-postgres's config plus pool size."""
        return pooled_config()

    @classmethod
    def from_config_value(  # type: ignore[override]
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]
    ) -> "PooledPostgresStorage":
        """Built from dagster.yaml."""
        return cls(inst_data=inst_data, **_options(config_value))

    @property
    def event_storage_data(self) -> ConfigurableClassData | None:
        """The pooled event-log storage, for processes that rebuild parts separately."""
        return self._part_data("PooledPostgresEventLogStorage")

    @property
    def run_storage_data(self) -> ConfigurableClassData | None:
        """The pooled run storage, for processes that rebuild parts separately."""
        return self._part_data("PooledPostgresRunStorage")

    @property
    def schedule_storage_data(self) -> ConfigurableClassData | None:
        """The pooled schedule storage, for processes that rebuild parts separately."""
        return self._part_data("PooledPostgresScheduleStorage")

    def _part_data(self, class_name: str) -> ConfigurableClassData | None:
        if self.inst_data is None:
            return None
        return ConfigurableClassData(__name__, class_name, self.inst_data.config_yaml)


def runs_engine(instance: dg.DagsterInstance) -> sa.Engine | None:
    """The pooled engine on the database of the instance's runs, if it is ours (PostgreSQL)."""
    storage = run_storage_of(instance)
    return storage._engine if isinstance(storage, _Pooled) else None
