"""The supervisor of ``knowledge up`` restarts what dies and gives up loudly (issue 16, defect 7).

Real processes only: the services are real children killed with SIGKILL, and the platform test
kills the embedded PostgreSQL's postmaster under a running ``knowledge up``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import stat
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from knowledge_assets.platform.floodgate import FloodGate
from knowledge_assets.platform.services.supervised import ChildProcess, RestartPolicy, ServerService
from knowledge_assets.platform.services.valkey import ValkeyService
from knowledge_assets.platform.supervisor import PlatformFailed, Supervisor
from tests.conftest import free_port
from tests.corpus import synthetic_documents
from tests.processes import spawn, terminate, wait_until

SLEEPER = [sys.executable, "-c", "import time; time.sleep(600)"]
QUICK = RestartPolicy(max_restarts=3, window_s=60, first_backoff_s=0.2, max_backoff_s=1)


def child(tmp_path: Path, argv: list[str], name: str = "part") -> ChildProcess:
    return ChildProcess(
        name, argv, dict(os.environ), cwd=tmp_path, log_path=tmp_path / f"{name}.log",
        policy=QUICK,
    )  # fmt: skip


def supervise(supervisor: Supervisor, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        supervisor.check()
        time.sleep(0.1)


def test_a_killed_child_is_restarted_with_backoff(tmp_path: Path) -> None:
    part = child(tmp_path, SLEEPER)
    supervisor = Supervisor([part])
    supervisor.start()
    try:
        assert part.process is not None
        first = part.process.pid
        os.kill(first, signal.SIGKILL)
        supervise(supervisor, 2)
        assert part.alive() and part.process.pid != first
    finally:
        supervisor.stop()
    assert not part.alive()


def test_a_child_that_keeps_dying_stops_the_platform_within_30_s(tmp_path: Path) -> None:
    part = child(tmp_path, [sys.executable, "-c", "raise SystemExit(3)"], name="doomed")
    supervisor = Supervisor([part])
    supervisor.start()
    started = time.monotonic()
    try:
        with pytest.raises(PlatformFailed, match="doomed died again after 3 restarts"):
            supervise(supervisor, 30)
    finally:
        supervisor.stop()
    assert time.monotonic() - started < 30


def test_a_killed_valkey_is_restarted_on_its_port_with_its_data(tmp_path: Path) -> None:
    valkey = ValkeyService(tmp_path / "valkey", "broker-password-0123", free_port())
    broker = ServerService(valkey, policy=QUICK)
    supervisor = Supervisor([broker])
    supervisor.start()
    try:
        client = valkey.client()
        client.set("queued", "a run")
        client.close()
        first = valkey.running_pid()
        assert first is not None
        valkey.kill()
        assert not broker.alive()
        supervise(supervisor, 3)
        assert broker.alive() and valkey.running_pid() != first
        client = valkey.client()
        assert client.get("queued") == b"a run", "the broker's data survives its restart"
        client.close()
    finally:
        supervisor.stop()
    assert not broker.alive()


def test_a_service_that_cannot_start_again_stops_the_platform(tmp_path: Path) -> None:
    port = free_port()
    valkey = ValkeyService(tmp_path / "valkey", "broker-password-0123", port)
    supervisor = Supervisor([ServerService(valkey, policy=QUICK)])
    supervisor.start()
    squatter = socket.socket()
    try:
        valkey.kill()
        # Another program took its port: every restart fails, and the supervisor gives up
        # loudly, naming it, instead of running a platform without a broker.
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        with pytest.raises(PlatformFailed, match="valkey died again after 3 restarts"):
            supervise(supervisor, 30)
    finally:
        squatter.close()
        supervisor.stop()


def test_a_flood_of_one_message_is_cut_short_and_the_log_is_private(tmp_path: Path) -> None:
    flood = (
        "import sys\n"
        "for i in range(20000):\n"
        "    print(f'dagster_postgres: too many retries for DB connection (attempt {i})')\n"
        "print('a different line')\n"
    )
    part = child(tmp_path, [sys.executable, "-c", flood], name="flood")
    part.start()
    assert part.process is not None
    part.process.wait(timeout=60)
    part.stop()
    log = tmp_path / "flood.log"
    lines = log.read_text(encoding="utf-8").splitlines()
    assert len(lines) < 100, f"{len(lines)} lines written"
    assert "a different line" in lines
    assert any("19980 more lines like this one were dropped" in line for line in lines)
    assert stat.S_IMODE(log.stat().st_mode) == 0o600


def test_flood_gate_lets_distinct_lines_through(tmp_path: Path) -> None:
    gate = FloodGate(tmp_path / "x.log", per_shape=2)
    kept = [gate.admit(f"step {i} of a run\n".encode(), 0.0) for i in range(5)]
    assert [len(k) for k in kept] == [1, 1, 0, 0, 0]
    assert gate.admit(b"another message\n", 1.0) == [b"another message\n"]
    report = gate.admit(b"later\n", 61.0)
    assert report[0].startswith(b"[knowledge up] 3 more lines like this one were dropped")
    assert report[1] == b"later\n"


# -- the whole platform: the postmaster killed under a running batch ---------------------------


@pytest.fixture
def embedded_home() -> Iterator[Path]:
    """A home under /tmp (PostgreSQL's socket path must stay short), deleted afterwards."""
    root = Path(tempfile.mkdtemp(prefix="kup-", dir="/tmp"))
    try:
        yield root / "home"
    finally:
        shutil.rmtree(root, ignore_errors=True)


def platform_env(home: Path, api_port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KNOWLEDGE_", "DAGSTER_"))}
    return dict(
        env,
        KNOWLEDGE_HOME=str(home),
        KNOWLEDGE_UI_PORT=str(free_port()),
        KNOWLEDGE_API_PORT=str(api_port),
    )


def postmaster(home: Path) -> psutil.Process:
    pid = int((home / "pg" / "postmaster.pid").read_text().splitlines()[0])
    return psutil.Process(pid)


def batch_state(url: str, token: str, batch_id: str) -> dict:
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.get(f"{url}/batches/{batch_id}", headers=headers, timeout=10).json()


def test_postmaster_killed_mid_batch_the_platform_recovers_and_the_batch_completes(
    embedded_home: Path,
) -> None:
    """The database, then the broker and the local worker: each part of issue 13's platform dies
    under ``knowledge up`` and comes back without a hand on it."""
    token = "file-token-0123456789abcdef"
    embedded_home.mkdir(parents=True)
    token_file = embedded_home / "api_token"
    token_file.write_text(token + "\n", encoding="utf-8")
    token_file.chmod(0o600)
    api_port = free_port()
    url = f"http://127.0.0.1:{api_port}"
    up = spawn(
        [sys.executable, "-m", "knowledge_assets.cli", "up"],
        platform_env(embedded_home, api_port),
        embedded_home.parent / "up.log",
    )
    try:
        wait_until(lambda: _ready(url), 180)
        documents = [
            {"id": d.name, "text": d.data.decode()} for d in synthetic_documents(120, sentences=8)
        ]
        response = httpx.post(
            f"{url}/batches",
            json={"documents": documents},
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        )
        assert response.status_code == 202, response.text
        batch_id = response.json()["batch_id"]
        wait_until(lambda: batch_state(url, token, batch_id)["state"] == "extracting", 180)
        victim = postmaster(embedded_home)
        victim.kill()
        killed_at = time.monotonic()
        # The API answers the documented JSON error while the database is away, never a 500.
        outage = _json_errors_while_down(url, token, batch_id)
        assert all(code in (200, 503) for code, _ in outage), outage
        assert all(body.get("error", {}).get("code") for code, body in outage if code == 503)
        wait_until(lambda: _postmaster_back(embedded_home, victim.pid), 30)
        recovered_in = time.monotonic() - killed_at
        final = wait_until(lambda: _terminal(url, token, batch_id), 600)
        assert isinstance(final, dict)
        assert final["state"] == "complete", final
        assert up.poll() is None, "knowledge up exited"
        assert recovered_in < 30
        _kill_the_broker_and_the_worker_then_run_a_batch(embedded_home, url, token)
    finally:
        terminate(up, 60)
    log = (embedded_home.parent / "up.log").read_text(encoding="utf-8", errors="replace")
    assert "database is down; restarting it" in log
    assert "valkey is down; restarting it" in log
    assert "worker-1 is down; restarting it" in log
    assert token not in log, "the API token was printed"
    assert f"in {token_file}" in log
    for path in (embedded_home / "logs").glob("*.log"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        assert path.stat().st_size < 2_000_000, f"{path.name} flooded"


def _kill_the_broker_and_the_worker_then_run_a_batch(home: Path, url: str, token: str) -> None:
    """kill -9 Valkey and the local worker's process group: both come back, a batch runs."""
    valkey = psutil.Process(int((home / "services" / "valkey" / "service.pid").read_text()))
    (worker,) = [p for p in psutil.process_iter(["cmdline"]) if _is_local_worker(p, home)]
    valkey.kill()
    os.killpg(worker.pid, signal.SIGKILL)
    wait_until(lambda: _respawned(home / "services" / "valkey" / "service.pid", valkey.pid), 30)
    documents = [{"id": "after.txt", "text": "Grace Hopper visited the Harvard Mark I team."}]
    response = httpx.post(
        f"{url}/batches",
        json={"documents": documents},
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )
    assert response.status_code == 202, response.text
    final = wait_until(lambda: _terminal(url, token, response.json()["batch_id"]), 300)
    assert isinstance(final, dict) and final["state"] == "complete", final
    (again,) = [p for p in psutil.process_iter(["cmdline"]) if _is_local_worker(p, home)]
    assert again.pid != worker.pid
    assert set(final["workers"].values()) == {f"local-1@{socket.gethostname()}"}


def _is_local_worker(process: psutil.Process, home: Path) -> bool:
    """The main process of worker local-1 under ``home``: it leads its session, its pool not."""
    try:
        cmdline = process.info["cmdline"] or []
        if "worker" not in cmdline or "local-1" not in cmdline:
            return False
        leads = os.getsid(process.pid) == process.pid
        return leads and process.environ().get("KNOWLEDGE_HOME") == str(home)
    except (psutil.Error, OSError):
        return False


def _respawned(pid_file: Path, dead_pid: int) -> bool:
    try:
        pid = int(pid_file.read_text())
    except (OSError, ValueError):
        return False
    return pid != dead_pid and psutil.pid_exists(pid)


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def _json_errors_while_down(url: str, token: str, batch_id: str) -> list[tuple[int, dict]]:
    seen = []
    for _ in range(5):
        try:
            response = httpx.get(
                f"{url}/batches/{batch_id}",
                headers={"Authorization": f"Bearer {token}"},
                timeout=30,
            )
        except httpx.HTTPError:
            continue
        seen.append((response.status_code, response.json()))
        time.sleep(0.2)
    return seen


def _postmaster_back(home: Path, dead_pid: int) -> bool:
    try:
        process = postmaster(home)
    except (OSError, IndexError, ValueError, psutil.Error):
        return False
    return process.pid != dead_pid and process.status() != psutil.STATUS_ZOMBIE


def _terminal(url: str, token: str, batch_id: str) -> dict | None:
    try:
        status = batch_state(url, token, batch_id)
    except (httpx.HTTPError, ValueError):
        return None
    return status if status.get("state") in ("complete", "failed") else None
