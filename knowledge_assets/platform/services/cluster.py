"""The services of one platform home, and the ``cluster.env`` a worker joins with.

``knowledge up`` starts what no URL names: Valkey always (the broker), and with ``--listen``
(serving other hosts) PostgreSQL over TCP and SeaweedFS. Secrets are generated once per home
(``services/secrets.json``, 0600) and ports chosen once (``services/ports.json``: the preferred
ones, or free ones if taken), so a restart reuses both and ``cluster.env`` stays valid.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path

from knowledge_assets.db.embedded import IDLE_IN_TRANSACTION_TIMEOUT
from knowledge_assets.files import write_atomic
from knowledge_assets.platform.services.base import ManagedService, StartReport, port_is_free
from knowledge_assets.platform.services.postgres import PostgresService
from knowledge_assets.platform.services.seaweed import GRPC_OFFSET, SeaweedPorts, SeaweedService
from knowledge_assets.platform.services.valkey import ValkeyService

__all__ = [
    "CLUSTER_FILE",
    "PIPELINE_VARIABLES",
    "SERVICE_VARIABLES",
    "Ports",
    "Secrets",
    "ServiceSet",
    "client_environment",
    "joined_environment",
    "read_cluster_env",
    "write_cluster_env",
]

CLUSTER_FILE = "cluster.env"
# Where the shared state is: a joining worker must use exactly these.
SERVICE_VARIABLES = (
    "KNOWLEDGE_DATABASE_URL",
    "KNOWLEDGE_BROKER_URL",
    "KNOWLEDGE_STORAGE_URL",
    "KNOWLEDGE_STORAGE_ENDPOINT",
    "KNOWLEDGE_STORAGE_KEY",
    "KNOWLEDGE_STORAGE_SECRET",
)
# How the control plane extracts: a worker runs the same pipeline unless its host says otherwise.
PIPELINE_VARIABLES = (
    "KNOWLEDGE_EXTRACTOR",
    "KNOWLEDGE_LLM_BASE_URL",
    "KNOWLEDGE_LLM_MODEL",
    "KNOWLEDGE_LLM_API_KEY",
    "KNOWLEDGE_LLM_CONCURRENCY",
    "KNOWLEDGE_LLM_TIMEOUT_S",
    "KNOWLEDGE_LLM_MAX_RETRIES",
    "KNOWLEDGE_CHUNK_MAX_CHARS",
    "KNOWLEDGE_MAX_DOCUMENT_BYTES",
    "KNOWLEDGE_SPACY_MODEL",
    "KNOWLEDGE_SPACY_PROCESSES",
    "KNOWLEDGE_RESOLUTION_THRESHOLD",
)
_BUCKET = "knowledge"


@dataclass(frozen=True)
class Secrets:
    """The home's generated credentials."""

    postgres_password: str
    valkey_password: str
    s3_access_key: str
    s3_secret_key: str

    @classmethod
    def load_or_create(cls, path: Path) -> Secrets:
        """Read the home's secrets, generating them on first use (mode 0600)."""
        if path.exists():
            return cls(**json.loads(path.read_text()))
        made = cls(
            postgres_password=secrets.token_urlsafe(24),
            valkey_password=secrets.token_urlsafe(24),
            s3_access_key="knowledge-" + secrets.token_hex(6),
            s3_secret_key=secrets.token_urlsafe(30),
        )
        write_atomic(path, json.dumps(asdict(made)).encode())
        return made


@dataclass(frozen=True)
class Ports:
    """Where the services listen; the defaults stay off the usual ports of a shared machine."""

    postgres: int = 25432
    valkey: int = 26379
    seaweed: SeaweedPorts = field(default_factory=SeaweedPorts)

    @classmethod
    def load_or_choose(cls, path: Path, preferred: Ports | None = None) -> Ports:
        """The ports this home used before; else ``preferred``, each moved if already taken."""
        if path.exists():
            raw = json.loads(path.read_text())
            return cls(raw["postgres"], raw["valkey"], SeaweedPorts(**raw["seaweed"]))
        wanted = preferred or cls()
        sea = wanted.seaweed
        chosen = cls(
            postgres=_free(wanted.postgres),
            valkey=_free(wanted.valkey),
            seaweed=SeaweedPorts(
                s3=_free(sea.s3), master=_free(sea.master, grpc=True),
                volume=_free(sea.volume, grpc=True), filer=_free(sea.filer, grpc=True),
            ),
        )  # fmt: skip
        write_atomic(path, json.dumps(asdict(chosen)).encode(), mode=0o644)
        return chosen


def _free(port: int, *, grpc: bool = False) -> int:
    """``port`` if it (and its gRPC twin) can be bound, else the next such port."""
    candidate = port
    while not (port_is_free(candidate) and (not grpc or port_is_free(candidate + GRPC_OFFSET))):
        candidate += 1
    return candidate


class ServiceSet:
    """The services one home runs, started and stopped together.

    ``bind`` is the listen address (127.0.0.1: this host only); ``advertise`` the host name other
    machines use in ``cluster.env``. PostgreSQL and SeaweedFS are only run when asked: the
    one-host default keeps the embedded database on its socket and storage in a local folder.
    """

    def __init__(
        self,
        home: Path,
        *,
        bind: str = "127.0.0.1",
        broker: bool = True,
        database: bool = False,
        storage: bool = False,
        ports: Ports | None = None,
        idle_in_transaction_timeout: str = IDLE_IN_TRANSACTION_TIMEOUT,
    ) -> None:
        self.home = home
        self.bind = bind
        root = home / "services"
        root.mkdir(parents=True, exist_ok=True)
        self.secrets = Secrets.load_or_create(root / "secrets.json")
        self.ports = ports or Ports.load_or_choose(root / "ports.json")
        self.postgres = (
            PostgresService(
                home / "pg", self.secrets.postgres_password, self.ports.postgres, bind=bind,
                idle_in_transaction_timeout=idle_in_transaction_timeout,
            )
            if database
            else None
        )  # fmt: skip
        self.valkey = (
            ValkeyService(root / "valkey", self.secrets.valkey_password, self.ports.valkey, bind)
            if broker
            else None
        )
        self.seaweed = (
            SeaweedService(
                root / "seaweedfs", self.secrets.s3_access_key, self.secrets.s3_secret_key,
                ports=self.ports.seaweed, bind=bind, bucket=_BUCKET,
            )
            if storage
            else None
        )  # fmt: skip

    @property
    def services(self) -> list[ManagedService]:
        """The services this home runs, in start order (the database first)."""
        chosen = (self.postgres, self.valkey, self.seaweed)
        return [s for s in chosen if s is not None]

    def start(self) -> dict[str, StartReport]:
        """Start (or adopt) each service; how long each took."""
        return {service.name: service.start() for service in self.services}

    def stop(self) -> None:
        """Stop them, the database last: workers may still be writing their last events."""
        for service in reversed(self.services):
            service.stop()

    def environment(self, advertise: str | None = None) -> dict[str, str]:
        """The ``KNOWLEDGE_*`` variables naming these services, as ``advertise`` reaches them."""
        found: dict[str, str] = {}
        if self.postgres is not None:
            found["KNOWLEDGE_DATABASE_URL"] = self.postgres.url(advertise)
        if self.valkey is not None:
            found["KNOWLEDGE_BROKER_URL"] = self.valkey.url(advertise)
        if self.seaweed is not None:
            found.update(
                KNOWLEDGE_STORAGE_URL=f"s3://{self.seaweed.bucket}/knowledge",
                KNOWLEDGE_STORAGE_ENDPOINT=self.seaweed.endpoint_for(advertise),
                KNOWLEDGE_STORAGE_KEY=self.seaweed.access_key,
                KNOWLEDGE_STORAGE_SECRET=self.seaweed.secret_key,
            )
        return found


def write_cluster_env(path: Path, variables: dict[str, str]) -> None:
    """``KEY=value`` lines for a joining worker, mode 0600 (it holds every credential)."""
    lines = ["# knowledge: `knowledge worker --join FILE` on any host. Secret: keep it 0600."]
    names = (*SERVICE_VARIABLES, *PIPELINE_VARIABLES)
    lines += [f"{k}={variables[k]}" for k in names if k in variables]
    write_atomic(path, ("\n".join(lines) + "\n").encode(), mode=0o600)


def read_cluster_env(path: Path) -> dict[str, str]:
    """The variables of a ``cluster.env``; refuses a file other users can read."""
    if path.stat().st_mode & 0o077:
        raise PermissionError(f"{path} must not be readable by others (chmod 600 {path})")
    known = {*SERVICE_VARIABLES, *PIPELINE_VARIABLES}
    found: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key in known:
            found[key] = value
    missing = [k for k in ("KNOWLEDGE_DATABASE_URL", "KNOWLEDGE_BROKER_URL") if k not in found]
    if missing:
        raise ValueError(f"{path} lacks {', '.join(missing)}")
    return found


def joined_environment(path: Path, environ: dict[str, str]) -> dict[str, str]:
    """``environ`` joined to a cluster: its service URLs win, its pipeline settings fill gaps."""
    found = read_cluster_env(path)
    joined = dict(environ)
    for key, value in found.items():
        if key in SERVICE_VARIABLES or key not in joined:
            joined[key] = value
    return joined


def client_environment(home: Path) -> dict[str, str]:
    """What a command in ``home`` needs from its platform's ``cluster.env`` to reach it.

    The broker and the object store are only known there. The database too when the platform
    serves it over TCP; the embedded one (a socket URL) is found from the home as always, so
    commands keep working after the platform stopped.
    """
    path = home / CLUSTER_FILE
    if not path.exists():
        return {}
    found = read_cluster_env(path)
    if "?host=" in found.get("KNOWLEDGE_DATABASE_URL", ""):
        del found["KNOWLEDGE_DATABASE_URL"]
    return {k: v for k, v in found.items() if k in SERVICE_VARIABLES}
