"""The Dagster instance of the platform running under ``KNOWLEDGE_HOME``."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import dagster as dg

from knowledge_assets.db.engine import database_url
from knowledge_assets.settings import Settings

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def prepare_dagster_home(settings: Settings, url: str) -> Path:
    """Write ``DAGSTER_HOME/dagster.yaml`` and export what it reads (the database URL)."""
    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    os.environ["KNOWLEDGE_DATABASE_URL"] = url
    os.environ["DAGSTER_HOME"] = str(home)
    return home


@contextlib.contextmanager
def open_instance(settings: Settings) -> Iterator[dg.DagsterInstance]:
    """The instance whose storage is the platform's database (embedded or external)."""
    home = prepare_dagster_home(settings, database_url(settings))
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        yield instance
    finally:
        instance.dispose()
