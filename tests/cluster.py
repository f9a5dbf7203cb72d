"""A platform spread over processes that share nothing but its three services.

The control plane (this test process as the API, and a ``dagster-daemon``) and a registry worker
run here; the two extraction workers each run ``knowledge worker --join FILE`` with a home and a
working folder of their own, each in a network namespace of its own where ``ip netns`` works (as
root): they reach PostgreSQL, Valkey and SeaweedFS's S3 gateway only through a veth pair, by the
URLs in their ``cluster.env``, and the local fake LLM the same way.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from knowledge_assets.db.admin import create_database
from knowledge_assets.platform.services.cluster import (
    Ports,
    ServiceSet,
    write_cluster_env,
)
from knowledge_assets.platform.services.seaweed import SeaweedPorts
from tests.conftest import PROJECT_ROOT
from tests.durability import LLM_CONCURRENCY
from tests.fakes.openai_server import FakeOpenAI
from tests.processes import Worker, spawn, terminate

PIPELINE = {
    "KNOWLEDGE_EXTRACTOR": "llm",
    "KNOWLEDGE_LLM_CONCURRENCY": str(LLM_CONCURRENCY),
    "KNOWLEDGE_LLM_MAX_RETRIES": "2",
    "KNOWLEDGE_CHUNK_MAX_CHARS": "200",
}


def netns_available() -> str | None:
    """None when network namespaces can be made here, else why not."""
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add)"
    if shutil.which("ip") is None:
        return "the ip command (iproute2) is not installed"
    probe = f"kaprobe{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"ip netns add failed: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


@dataclass
class Namespace:
    """A network namespace joined to this host by a veth pair (a /30 of its own)."""

    name: str
    host_ip: str
    inner_ip: str

    @property
    def host_link(self) -> str:
        return f"{self.name}h"

    def create(self) -> None:
        inner = f"{self.name}n"
        for argv in (
            ["ip", "netns", "add", self.name],
            ["ip", "link", "add", self.host_link, "type", "veth", "peer", "name", inner],
            ["ip", "link", "set", inner, "netns", self.name],
            ["ip", "addr", "add", f"{self.host_ip}/30", "dev", self.host_link],
            ["ip", "link", "set", self.host_link, "up"],
            ["ip", "-n", self.name, "addr", "add", f"{self.inner_ip}/30", "dev", inner],
            ["ip", "-n", self.name, "link", "set", inner, "up"],
            ["ip", "-n", self.name, "link", "set", "lo", "up"],
        ):
            subprocess.run(argv, check=True, capture_output=True)

    def delete(self) -> None:
        subprocess.run(["ip", "link", "del", self.host_link], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)

    def prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.name]


@dataclass
class Cluster:
    """The running cluster of one test module."""

    root: Path
    services: ServiceSet
    database_url: str
    fake: FakeOpenAI
    control_env: dict[str, str]
    failpoints: Path
    namespaces: dict[str, Namespace | None]
    workers: dict[str, Worker] = field(default_factory=dict)
    daemon: subprocess.Popen[bytes] | None = None

    def worker_env(self, name: str) -> dict[str, str]:
        """Nothing of this process's environment: a home, the LLM address, the failpoints."""
        namespace = self.namespaces.get(name)
        host = namespace.host_ip if namespace else "127.0.0.1"
        home = self.root / name / "home"
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "KNOWLEDGE_HOME": str(home),
            "KNOWLEDGE_LLM_BASE_URL": self.fake.url_for(host),
            "KNOWLEDGE_FAILPOINTS": str(self.failpoints),
        }

    def cluster_file(self, name: str) -> Path:
        """The worker's ``cluster.env``, naming the services by the address it reaches them at."""
        namespace = self.namespaces.get(name)
        host = namespace.host_ip if namespace else "127.0.0.1"
        variables = {**PIPELINE, **self.services.environment(host)}
        variables["KNOWLEDGE_DATABASE_URL"] = self.database_url.replace("@127.0.0.1:", f"@{host}:")
        path = self.root / name / "cluster.env"
        write_cluster_env(path, variables)
        return path

    def start_worker(self, name: str, queues: str = "extraction-llm") -> Worker:
        """``knowledge worker --join`` as ``name``, in its namespace if it has one."""
        namespace = self.namespaces.get(name)
        work = self.root / name / "work"
        work.mkdir(parents=True, exist_ok=True)
        worker = Worker(
            self.worker_env(name),
            self.root / name / "worker.log",
            name=name,
            args=["--join", str(self.cluster_file(name)), "--queues", queues],
            prefix=namespace.prefix() if namespace else (),
            concurrency=1,
            cwd=work,
        )
        self.workers[name] = worker.start()
        return worker

    def start_daemon(self) -> None:
        daemon = str(Path(sys.executable).parent / "dagster-daemon")
        command = [daemon, "run", "-w", str(PROJECT_ROOT / "workspace.yaml")]
        self.daemon = spawn(command, self.control_env, self.root / "control" / "daemon.log")

    def stop(self) -> None:
        for worker in self.workers.values():
            worker.stop()
        if self.daemon is not None:
            terminate(self.daemon, 20, group=True)
        self.services.stop()
        for namespace in self.namespaces.values():
            if namespace is not None:
                namespace.delete()


def cluster_ports(path: Path) -> Ports:
    """Free ports for the module's services, from a random base (the machine is shared).

    SeaweedFS also takes each HTTP port + 10000 for gRPC: the base stays below 45000.
    """
    base = random.randrange(20000, 45000, 10)
    sea = SeaweedPorts(s3=base + 2, master=base + 3, volume=base + 4, filer=base + 5)
    return Ports.load_or_choose(path, Ports(postgres=base, valkey=base + 1, seaweed=sea))


@contextlib.contextmanager
def running_cluster(root: Path, names: Sequence[str], use_netns: bool) -> Iterator[Cluster]:
    """Services bound to every address, the control plane, a registry worker, ``names`` workers."""
    tag = os.getpid() % 10000
    namespaces: dict[str, Namespace | None] = {name: None for name in names}
    if use_netns:
        for index, name in enumerate(names):
            subnet = 4 * index
            namespaces[name] = Namespace(
                f"ka{tag}{name}",
                f"10.213.{tag % 250}.{subnet + 1}",
                f"10.213.{tag % 250}.{subnet + 2}",
            )
    (root / "control").mkdir(parents=True, exist_ok=True)
    services = ServiceSet(
        root / "control", bind="0.0.0.0", database=True, storage=True,
        ports=cluster_ports(root / "control" / "ports.json"),
    )  # fmt: skip
    with FakeOpenAI(default_delay=0.1, host="0.0.0.0") as fake:
        cluster: Cluster | None = None
        try:
            for namespace in namespaces.values():
                if namespace is not None:
                    namespace.delete()  # left by an interrupted run of this process id
                    namespace.create()
            services.start()
            assert services.postgres is not None
            database = create_database(services.postgres.url(), prefix="ka_cluster")
            failpoints = root / "failpoints"
            failpoints.mkdir(parents=True, exist_ok=True)
            control = root / "control"
            env = {
                k: v for k, v in os.environ.items() if not k.startswith(("KNOWLEDGE_", "DAGSTER_"))
            }
            env.update(PIPELINE, **services.environment())
            env.update(
                KNOWLEDGE_HOME=str(control),
                KNOWLEDGE_DATABASE_URL=database,
                KNOWLEDGE_LLM_BASE_URL=fake.base_url,
                KNOWLEDGE_FAILPOINTS=str(failpoints),
                DAGSTER_HOME=str(control / "dagster"),
            )
            (control / "dagster").mkdir(parents=True, exist_ok=True)
            shutil.copyfile(PROJECT_ROOT / "dagster.yaml", control / "dagster" / "dagster.yaml")
            cluster = Cluster(root, services, database, fake, env, failpoints, namespaces)
            cluster.start_daemon()
            cluster.start_worker("registry", queues="registry")
            for name in names:
                cluster.start_worker(name)
            for worker in cluster.workers.values():
                worker.wait_ready()
            yield cluster
        finally:
            if cluster is not None:
                cluster.stop()
            else:
                services.stop()
                for namespace in namespaces.values():
                    if namespace is not None:
                        namespace.delete()
