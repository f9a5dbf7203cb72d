"""Failpoints: crash the process at a named point, for crash tests that must hit every stage.

An external ``kill -9`` lands wherever the process happens to be, and the fast stages (decoding,
chunking) finish in milliseconds, so a test could never be sure to crash inside them. A failpoint
makes the crash land exactly there: when ``KNOWLEDGE_FAILPOINTS`` names a folder holding a file
called after the point, the first process to reach the point claims the file (an atomic rename,
so only one crash per file) and kills itself with SIGKILL, exactly as a host crash would.

A file's content, if any, is a number ``n``: the point fires on its ``n``-th hit in the process
(e.g. after ``n`` extracted chunks). The content ``always`` makes a sticky failpoint that fires on
every hit and is never claimed: a poison input that crashes every attempt. The content ``stop``
freezes the process with SIGSTOP instead of killing it (a frozen or partitioned worker, which may
wake up later). Without the environment variable a failpoint costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal
from collections import Counter
from pathlib import Path

ENVIRONMENT = "KNOWLEDGE_FAILPOINTS"
ALWAYS = "always"
STOP = "stop"
_hits: Counter[str] = Counter()


def failpoint(name: str) -> None:
    """Crash here if a test armed ``name``."""
    folder = os.environ.get(ENVIRONMENT)
    if not folder:
        return
    armed = Path(folder) / name
    if not armed.is_file():
        return
    _hits[name] += 1
    wanted = armed.read_text(encoding="utf-8").strip()
    if wanted == ALWAYS:
        armed.with_name(f"{name}.fired-{os.getpid()}").touch()
        os.kill(os.getpid(), signal.SIGKILL)
    if wanted not in ("", STOP) and _hits[name] < int(wanted):
        return
    claimed = armed.with_name(f"{name}.fired-{os.getpid()}")
    try:
        os.rename(armed, claimed)
    except FileNotFoundError:
        return  # another process claimed it first
    os.kill(os.getpid(), signal.SIGSTOP if wanted == STOP else signal.SIGKILL)


def arm(folder: Path, name: str, after_hits: int | str = 1) -> Path:
    """Arm ``name`` in ``folder`` (for tests and the recovery benchmark)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(str(after_hits), encoding="utf-8")
    return path


def fired(folder: Path, name: str) -> bool:
    """Whether ``name`` crashed a process."""
    return any(folder.glob(f"{name}.fired-*"))
