"""``cluster.env``, secrets and ports of a home: private, chosen once, read by the right rules."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from knowledge_assets.platform.services.base import port_is_free
from knowledge_assets.platform.services.cluster import (
    Ports,
    Secrets,
    client_environment,
    joined_environment,
    read_cluster_env,
    write_cluster_env,
)

SERVED = {
    "KNOWLEDGE_DATABASE_URL": "postgresql+psycopg2://postgres:pw@control:25432/postgres",
    "KNOWLEDGE_BROKER_URL": "redis://:pw@control:26379/0",
    "KNOWLEDGE_STORAGE_URL": "s3://knowledge/knowledge",
    "KNOWLEDGE_EXTRACTOR": "llm",
}


def test_cluster_env_is_private_and_refused_once_others_can_read_it(tmp_path: Path) -> None:
    path = tmp_path / "cluster.env"
    write_cluster_env(path, {**SERVED, "NOT_OURS": "x"})
    assert path.stat().st_mode & 0o777 == 0o600
    assert read_cluster_env(path) == SERVED
    os.chmod(path, 0o640)
    with pytest.raises(PermissionError, match="chmod 600"):
        read_cluster_env(path)


def test_a_cluster_env_without_database_or_broker_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cluster.env"
    write_cluster_env(path, {"KNOWLEDGE_BROKER_URL": SERVED["KNOWLEDGE_BROKER_URL"]})
    with pytest.raises(ValueError, match="KNOWLEDGE_DATABASE_URL"):
        read_cluster_env(path)


def test_joining_takes_the_clusters_services_and_keeps_the_hosts_pipeline_settings(
    tmp_path: Path,
) -> None:
    path = tmp_path / "cluster.env"
    write_cluster_env(path, SERVED)
    mine = {"KNOWLEDGE_BROKER_URL": "redis://elsewhere/1", "KNOWLEDGE_EXTRACTOR": "offline"}
    joined = joined_environment(path, mine)
    assert joined["KNOWLEDGE_BROKER_URL"] == SERVED["KNOWLEDGE_BROKER_URL"]
    assert joined["KNOWLEDGE_EXTRACTOR"] == "offline"
    assert joined["KNOWLEDGE_DATABASE_URL"] == SERVED["KNOWLEDGE_DATABASE_URL"]


def test_commands_take_the_broker_from_the_home_but_find_an_embedded_database_themselves(
    tmp_path: Path,
) -> None:
    socket_url = "postgresql+psycopg2://postgres:@/postgres?host=/srv/home/pg"
    write_cluster_env(tmp_path / "cluster.env", {**SERVED, "KNOWLEDGE_DATABASE_URL": socket_url})
    found = client_environment(tmp_path)
    assert found["KNOWLEDGE_BROKER_URL"] == SERVED["KNOWLEDGE_BROKER_URL"]
    assert "KNOWLEDGE_DATABASE_URL" not in found, "a stopped platform's socket is no answer"
    assert "KNOWLEDGE_EXTRACTOR" not in found
    write_cluster_env(tmp_path / "cluster.env", SERVED)
    assert (
        client_environment(tmp_path)["KNOWLEDGE_DATABASE_URL"] == SERVED["KNOWLEDGE_DATABASE_URL"]
    )
    assert client_environment(tmp_path / "nowhere") == {}


def test_secrets_and_ports_are_chosen_once_per_home(tmp_path: Path) -> None:
    secrets = Secrets.load_or_create(tmp_path / "secrets.json")
    assert (tmp_path / "secrets.json").stat().st_mode & 0o777 == 0o600
    assert Secrets.load_or_create(tmp_path / "secrets.json") == secrets
    ports = Ports.load_or_choose(tmp_path / "ports.json")
    assert all(port_is_free(p) for p in (ports.postgres, ports.valkey, ports.seaweed.s3))
    assert Ports.load_or_choose(tmp_path / "ports.json", Ports(postgres=1)) == ports
    assert json.loads((tmp_path / "ports.json").read_text())["valkey"] == ports.valkey
