"""The platform's one code server: started and supervised by ``knowledge up``, never swapped.

A workspace that names a Python module makes the daemon start its own code server and replace it
on every workspace reload (every 60 s, ``RELOAD_WORKSPACE_INTERVAL`` in Dagster's daemon
controller, not configurable); the replaced one logs "No heartbeat received in 20 seconds,
shutting down" and exits, and for a while two servers of about 170 MB run. A workspace that
names a gRPC server instead makes the daemon and the webserver connect to it and reconnect on
reload: no process is started, swapped or timed out. So ``knowledge up`` runs Dagster's own
``dagster code-server start`` once, waits until it serves, and points the workspace it writes
under ``DAGSTER_HOME`` at it (``docs/platform.md`` has the measurements).
"""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from knowledge_assets.files import write_atomic
from knowledge_assets.instance.home import LOCATION
from knowledge_assets.platform.services.supervised import ChildProcess, RestartPolicy

__all__ = [
    "CodeServer",
    "code_server_command",
    "free_port",
    "wait_until_serving",
    "write_workspace",
]

MODULE = "knowledge_assets.defs.definitions"
HOST = "127.0.0.1"


class CodeServer(ChildProcess):
    """The code server as a supervised service: started, then waited on until it serves.

    Its port is chosen once, so a restart serves on the same port and the workspace written for
    the webserver and the daemon stays true: they reconnect on their own.
    """

    def __init__(
        self,
        port: int,
        env: dict[str, str],
        *,
        cwd: Path,
        log_path: Path,
        policy: RestartPolicy | None = None,
    ) -> None:
        super().__init__(
            "code-server", code_server_command(port), env,
            cwd=cwd, log_path=log_path, policy=policy,
        )  # fmt: skip
        self.port = port

    def start(self) -> None:
        """Spawn ``dagster code-server start`` and return once it answers health checks."""
        super().start()
        wait_until_serving(self.port, alive=self.alive)


def code_server_command(port: int) -> list[str]:
    """``dagster code-server start`` for our definitions on ``HOST:port``, no heartbeat.

    Without ``--heartbeat`` the server lives until it is stopped: nothing it waits for can time
    it out. It starts the process that loads our code itself and keeps it alive.
    """
    dagster = str(Path(sys.executable).parent / "dagster")
    return [
        dagster, "code-server", "start", "-m", MODULE, "-a", "defs",
        "--location-name", LOCATION, "-h", HOST, "-p", str(port),
    ]  # fmt: skip


def write_workspace(dagster_home: Path, port: int) -> Path:
    """The platform's workspace: the one code location, served by the code server on ``port``."""
    text = (
        "# Written by `knowledge up` (knowledge_assets/platform/code_server.py): the code server\n"
        "# it started and supervises. The repository's workspace.yaml loads the module instead.\n"
        "load_from:\n"
        "  - grpc_server:\n"
        f"      host: {HOST}\n"
        f"      port: {port}\n"
        f"      location_name: {LOCATION}\n"
    )
    path = dagster_home / "workspace.yaml"
    write_atomic(path, text.encode("utf-8"))
    return path


def wait_until_serving(port: int, alive: Callable[[], bool], timeout_s: float = 300.0) -> None:
    """Return once the code server answers gRPC health checks (it has loaded our code).

    Raises ``RuntimeError`` if its process exits first or it is not serving within the timeout.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError("the code server exited while starting: see logs/code-server.log")
        if _serving(port):
            return
        time.sleep(0.5)
    raise RuntimeError(f"the code server did not serve within {timeout_s:.0f} s")


def _serving(port: int) -> bool:
    request = health_pb2.HealthCheckRequest(service="DagsterApi")
    with grpc.insecure_channel(f"{HOST}:{port}") as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(request, timeout=2)
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def free_port() -> int:
    """A TCP port on ``HOST`` that nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])
