"""Shared fixtures: a real PostgreSQL server and Valkey for the session; per test a fresh
database and a broker database of its own."""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from knowledge_assets.db.admin import create_database, drop_database
from knowledge_assets.db.embedded import EmbeddedPostgres, to_sqlalchemy_url
from knowledge_assets.db.engine import engine_for
from knowledge_assets.platform.services.valkey import DATABASES, ValkeyService
from knowledge_assets.settings import Settings
from tests.fakes.openai_server import FakeOpenAI

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"
ECBPLUS = SHARED_DATA / "ecbplus-dev"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", help="run the slow crash trials too")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow trial: run with `make test-slow`")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def admin_url() -> Iterator[str]:
    """An admin URL: ``KNOWLEDGE_TEST_ADMIN_URL`` if set, else a throw-away embedded server."""
    external = os.environ.get("KNOWLEDGE_TEST_ADMIN_URL")
    if external:
        yield to_sqlalchemy_url(external)
        return
    with embedded_server("kat-") as server:
        yield server.start()


@pytest.fixture(scope="session")
def valkey() -> Iterator[ValkeyService]:
    """One Valkey (the platform's broker and result backend) for the whole session."""
    root = Path(tempfile.mkdtemp(prefix="kav-", dir="/tmp"))
    service = ValkeyService(root / "valkey", secrets.token_urlsafe(16), free_port())
    service.start()
    try:
        yield service
    finally:
        service.stop()
        shutil.rmtree(root, ignore_errors=True)


# Per-test broker databases cycle through most of them; session-wide platforms keep the rest.
SESSION_BROKER_DATABASES = range(DATABASES - 8, DATABASES)
_broker_databases = itertools.cycle(range(1, SESSION_BROKER_DATABASES.start))


def empty_broker(valkey: ValkeyService, database: int) -> str:
    """The URL of broker database ``database``, emptied first."""
    client = valkey.client(database)
    try:
        client.flushdb()
    finally:
        client.close()
    return valkey.url(db=database)


@pytest.fixture
def broker_url(valkey: ValkeyService, monkeypatch: pytest.MonkeyPatch) -> str:
    """A broker database of the test's own: its workers see only its runs."""
    url = empty_broker(valkey, next(_broker_databases))
    monkeypatch.setenv("KNOWLEDGE_BROKER_URL", url)
    return url


@pytest.fixture
def own_server() -> Iterator[EmbeddedPostgres]:
    """An embedded server of the test's own (not started), for tests that restart it."""
    with embedded_server("kao-") as server:
        yield server


@contextlib.contextmanager
def embedded_server(prefix: str) -> Iterator[EmbeddedPostgres]:
    """An embedded server in a new directory under /tmp, stopped and deleted afterwards."""
    # Short path: PostgreSQL's Unix socket path must stay under ~100 bytes.
    root = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    server = EmbeddedPostgres(root / "pg")
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def database_url(admin_url: str) -> Iterator[str]:
    """A fresh database for one test, dropped afterwards."""
    with fresh_database(admin_url) as url:
        yield url


@pytest.fixture
def reference_url(admin_url: str) -> Iterator[str]:
    """A second fresh database, where the direct pipeline writes the graph a test expects."""
    with fresh_database(admin_url) as url:
        yield url


@contextlib.contextmanager
def fresh_database(admin_url: str) -> Iterator[str]:
    """A new database on the admin URL's server, dropped afterwards."""
    url = create_database(admin_url)
    try:
        yield url
    finally:
        engine_for(url).dispose()
        drop_database(url)


@pytest.fixture
def fake_llm() -> Iterator[FakeOpenAI]:
    """A local OpenAI-compatible server, slow enough (0.1 s an answer) to interrupt mid-run."""
    with FakeOpenAI(default_delay=0.1) as fake:
        yield fake


@pytest.fixture
def settings(
    tmp_path: Path, database_url: str, broker_url: str, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    """Settings pointing at the test's database, broker and a temporary home."""
    monkeypatch.setenv("KNOWLEDGE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KNOWLEDGE_DATABASE_URL", database_url)
    return Settings()


def require_ecbplus() -> Path:
    """The ECB+ evaluation corpus, or a skip that says why it is missing."""
    if not (ECBPLUS / "docs").is_dir():
        pytest.skip(f"evaluation corpus not found at {ECBPLUS} (only CI and dev machines have it)")
    return ECBPLUS


@pytest.fixture
def dagster_instance(
    settings: Settings, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[object]:
    """A real Dagster instance from the project's dagster.yaml, storing in the test database."""
    import dagster as dg

    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        yield instance
    finally:
        instance.dispose()


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
