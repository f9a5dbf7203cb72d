"""A pre-warmed process that forks run workers, so a launched run skips the worker's cold start.

Dagster's ``DefaultRunLauncher`` asks the code server to *spawn* every run worker: a fresh
interpreter that imports Dagster, dagster-postgres and our definitions before the first step, and
then loads the spaCy model inside it (about 1.4 s + 0.6 s per run, measured in bench/launched.py).
The fork server pays that once: it imports everything, loads the model, freezes the heap for
copy-on-write, and then forks one child per run. Each child runs exactly what a container run
launcher would exec, Dagster's ``dagster api execute_run <ExecuteRunArgs>`` command, so run
execution, events, cancellation and retries are Dagster's own.

Protocol, one JSON object per line: the server writes ``{"ready": ...}`` after warming up; each
request ``{"argv": [...], "executable": ...}`` is answered ``{"pid": N}`` or ``{"error": ...}``.
The server exits when its stdin closes (its launcher or the daemon died), and refuses with
``"stale"`` once any of its loaded ``knowledge_assets`` source files changed, so an edited code
location is never run with old code. It must stay single-threaded and hold no database
connection, because ``fork`` copies neither threads nor sockets safely.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import importlib
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
import traceback
from typing import Any

from knowledge_assets.failpoints import failpoint
from knowledge_assets.instance.dagster_internals import import_dagster_cli, run_dagster_cli

READY_TIMEOUT_S = 60.0
_REPLY_TIMEOUT_S = 10.0
_REAP_INTERVAL_S = 0.5


class ForkServerError(RuntimeError):
    """The fork server could not start a worker; the caller falls back to a cold launch."""


_shared: ForkServerClient | None = None
_shared_lock = threading.Lock()


def shared_client(preload: str) -> ForkServerClient:
    """The process's one fork server client: every launcher in the process forks from it."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = ForkServerClient(preload)
            atexit.register(_shared.close)
        return _shared


# -- the client, used by the run launcher inside dagster-daemon --------------------------------


class ForkServerClient:
    """Starts the fork server as a child process and asks it for run workers."""

    def __init__(self, preload: str) -> None:
        self.preload = preload
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._buffer = b""
        self._ready = False

    def start(self) -> None:
        """Spawn the server (idempotent); warming up continues in the background."""
        with self._lock:
            self._start_locked()

    def fork(self, argv: list[str], timeout_s: float = READY_TIMEOUT_S) -> int:
        """Fork a worker running ``dagster <argv>``; its PID. Raises ForkServerError."""
        with self._lock:
            self._start_locked()
            if not self._ready:
                self._await_ready(timeout_s)
            reply = self._ask({"argv": argv, "executable": sys.executable})
            if "pid" not in reply:
                if reply.get("error") == "stale":
                    self._stop_locked()
                raise ForkServerError(f"fork server refused: {reply.get('error')}")
            return int(reply["pid"])

    def close(self) -> None:
        """Stop the server; workers it forked keep running."""
        with self._lock:
            self._stop_locked()

    @property
    def pid(self) -> int | None:
        """The server's PID while it runs."""
        return self._process.pid if self._process and self._process.poll() is None else None

    def _start_locked(self) -> None:
        if self._process is not None and self._process.poll() is None:
            return
        self._buffer, self._ready = b"", False
        self._process = subprocess.Popen(
            [sys.executable, "-m", __name__, self.preload],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            start_new_session=False,
        )

    def _stop_locked(self) -> None:
        process, self._process = self._process, None
        self._ready = False
        if process is None:
            return
        with contextlib.suppress(OSError):
            if process.stdin:
                process.stdin.close()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout:
            process.stdout.close()

    def _await_ready(self, timeout_s: float) -> None:
        reply = self._read_line(timeout_s)
        if not reply.get("ready"):
            self._stop_locked()
            raise ForkServerError(f"fork server failed to warm up: {reply.get('error')}")
        self._ready = True

    def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        process = self._require_process()
        assert process.stdin is not None
        try:
            process.stdin.write(json.dumps(request).encode() + b"\n")
            process.stdin.flush()
        except OSError as exc:
            self._stop_locked()
            raise ForkServerError(f"fork server is gone: {exc}") from exc
        return self._read_line(_REPLY_TIMEOUT_S)

    def _read_line(self, timeout_s: float) -> dict[str, Any]:
        process = self._require_process()
        assert process.stdout is not None
        fd = process.stdout.fileno()
        deadline = time.monotonic() + timeout_s
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            readable, _, _ = select.select([fd], [], [], max(remaining, 0))
            if not readable:
                self._stop_locked()
                raise ForkServerError(f"fork server did not answer within {timeout_s:.0f} s")
            chunk = os.read(fd, 65536)
            if not chunk:
                self._stop_locked()
                raise ForkServerError("fork server exited")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return dict(json.loads(line))

    def _require_process(self) -> subprocess.Popen[bytes]:
        if self._process is None:
            raise ForkServerError("fork server is not running")
        return self._process


# -- the server ----------------------------------------------------------------------------------


def _warm_up(preload: str) -> dict[str, Any]:
    """Import what every run worker imports, then call the code location's warm-up hook.

    ``preload`` is ``module:function`` from the launcher's configuration (dagster.yaml): this
    module never imports the code it hosts, it is told what to load.
    """
    import dagster_postgres  # noqa: F401

    import_dagster_cli()
    module_name, _, function = preload.partition(":")
    hook = getattr(importlib.import_module(module_name), function)
    return {"preloaded": preload, **hook()}


def _source_mtimes(package: str) -> dict[str, float]:
    """Modification times of every loaded module of ``package``, to detect edited code."""
    mtimes: dict[str, float] = {}
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if path and (name == package or name.startswith(package + ".")):
            with contextlib.suppress(OSError):
                mtimes[path] = os.stat(path).st_mtime
    return mtimes


def _stale(mtimes: dict[str, float]) -> bool:
    for path, mtime in mtimes.items():
        try:
            if os.stat(path).st_mtime != mtime:
                return True
        except OSError:
            return True
    return False


def _run_child(argv: list[str]) -> None:
    """In the forked child: become an ordinary `dagster api execute_run` process, then exit."""
    code = 1
    try:
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(2, 1)  # our stdout is the protocol pipe: the worker's output goes to stderr
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        # SIGINT is Dagster's termination request (the launcher's terminate sends it); SIGTERM
        # ends the process like it ends a cold worker when the platform stops, so the run is
        # failed by run monitoring and retried, not marked canceled.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        gc.enable()
        run_dagster_cli(argv)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _reap() -> None:
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass


def _answer(request: dict[str, Any], mtimes: dict[str, float]) -> dict[str, Any]:
    if request.get("executable") != sys.executable:
        return {"error": f"different interpreter: {request.get('executable')}"}
    if _stale(mtimes):
        return {"error": "stale"}
    argv = [str(part) for part in request.get("argv", [])]
    if argv[:2] != ["api", "execute_run"]:
        return {"error": f"not a run command: {argv[:2]}"}
    if threading.active_count() != 1:
        return {"error": "the fork server has threads; forking would be unsafe"}
    pid = os.fork()
    if pid == 0:
        _run_child(argv)
    return {"pid": pid}


def _write(message: dict[str, Any]) -> None:
    os.write(1, json.dumps(message).encode() + b"\n")


def serve(preload: str) -> None:
    """Warm up with ``preload`` (``module:function``), then fork a worker per request."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the daemon to handle
    failpoint("forkserver.serve")
    try:
        preloaded = _warm_up(preload)
    except Exception as exc:
        _write({"ready": False, "error": f"{type(exc).__name__}: {exc}"})
        return
    mtimes = _source_mtimes(preload.split(".")[0])
    gc.collect()
    gc.freeze()  # keep the warm heap out of the collector: fewer copy-on-write page copies
    _write({"ready": True, **preloaded})
    buffer = b""
    while True:
        readable, _, _ = select.select([0], [], [], _REAP_INTERVAL_S)
        _reap()
        if not readable:
            continue
        chunk = os.read(0, 65536)
        if not chunk:
            return
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            _write(_answer(json.loads(line), mtimes))


if __name__ == "__main__":
    serve(sys.argv[1])
