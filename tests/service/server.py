"""A real API server process (``python -m api``) that tests start, kill and restart by its pid."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import free_port
from tests.processes import spawn, terminate

TOKEN = "test-token-0123456789abcdef"


class ApiServer:
    """``python -m api`` on a free port, with the test platform's environment."""

    def __init__(self, env: dict[str, str], log_path: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.env = dict(env, KNOWLEDGE_API_PORT=str(self.port), KNOWLEDGE_API_TOKEN=TOKEN)
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> ApiServer:
        self.process = spawn([sys.executable, "-m", "api"], self.env, self.log_path)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log_path.read_text()[-3000:]
            try:
                if httpx.get(f"{self.url}/readyz", timeout=5).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"API not ready in {timeout} s: {self.log_path.read_text()[-3000:]}")

    def kill(self) -> None:
        """kill -9 the server, as a crash would."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        """SIGTERM the server; SIGKILL it if it has not exited within 20 s."""
        if self.process is not None:
            terminate(self.process, 20)


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
