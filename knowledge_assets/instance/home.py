"""``DAGSTER_HOME`` of the platform under ``KNOWLEDGE_HOME``: written here, and only here.

The repository's ``dagster.yaml`` is the one source of the instance's configuration; every
process of the platform (daemon, webserver, run workers, the CLI and the API) reads its copy in
``$KNOWLEDGE_HOME/dagster``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import dagster as dg

from knowledge_assets.db.engine import database_url as configured_database_url
from knowledge_assets.files import write_atomic
from knowledge_assets.instance.dagster_internals import (
    instance_on_database,
    start_run_retry_cursors,
)
from knowledge_assets.settings import Settings

__all__ = ["INSTANCE_CONFIG", "LOCATION", "WORKSPACE", "open_instance", "write_dagster_home"]

PROJECT_ROOT = Path(__file__).resolve().parents[2]
INSTANCE_CONFIG = PROJECT_ROOT / "dagster.yaml"
WORKSPACE = PROJECT_ROOT / "workspace.yaml"
LOCATION = "knowledge_assets"  # the code location's name, in every workspace


def write_dagster_home(settings: Settings) -> Path:
    """``DAGSTER_HOME`` with ``dagster.yaml`` in it (replaced atomically).

    The repository's, unless ``KNOWLEDGE_DAGSTER_YAML`` names a deployment's own (more workers
    mean a higher extraction limit; Kubernetes means another run launcher).
    """
    home = settings.dagster_home
    write_atomic(home / "dagster.yaml", (settings.dagster_yaml or INSTANCE_CONFIG).read_bytes())
    return home


@contextlib.contextmanager
def open_instance(
    settings: Settings, database_url: str | None = None
) -> Iterator[dg.DagsterInstance]:
    """The platform's instance, storing in ``database_url`` (default: the settings' database).

    Disposed when the block ends.
    """
    url = database_url or configured_database_url(settings)
    instance = instance_on_database(write_dagster_home(settings), url)
    try:
        yield instance
    finally:
        instance.dispose()


def prepare_instance(settings: Settings, database_url: str | None = None) -> None:
    """Before any daemon starts: Dagster's tables created, the run retry cursors set.

    One process does it, so two processes starting together never race to create the tables.
    """
    with open_instance(settings, database_url) as instance:
        start_run_retry_cursors(instance)


if __name__ == "__main__":
    prepare_instance(Settings())
