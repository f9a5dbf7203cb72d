"""A child's output into its log file (mode 0600), with floods of one message cut short.

With the database gone, the daemon wrote the same "too many retries for DB connection" traceback
846 KB a minute (issue 16). Each line is reduced to a *shape* (numbers and hex ids masked); a
shape seen more than ``per_shape`` times in a minute is dropped until the minute ends, when one
line says how many were dropped, and no more than ``per_minute`` lines are written in a minute
in all. Everything else reaches the file unchanged.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections import Counter
from pathlib import Path
from typing import BinaryIO

__all__ = ["FloodGate", "open_private_log"]

_VARYING = re.compile(rb"0x[0-9a-fA-F]+|[0-9a-fA-F]{8,}|\d+")


def open_private_log(path: Path) -> BinaryIO:
    """Open ``path`` for appending, readable by its owner only (tokens must not leak there)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.fchmod(fd, 0o600)  # a log file made by an older release was 0644
    return os.fdopen(fd, "ab", buffering=0)


class FloodGate:
    """A pipe whose write end is the child's stdout; a thread copies it to the log file."""

    def __init__(
        self,
        path: Path,
        *,
        per_shape: int = 20,
        per_minute: int = 6000,
    ) -> None:
        self.log = open_private_log(path)
        self.per_shape = per_shape
        self.per_minute = per_minute
        read_fd, self.writer = os.pipe()
        self._reader = os.fdopen(read_fd, "rb")
        self._shapes: Counter[bytes] = Counter()
        self._dropped: dict[bytes, tuple[int, bytes]] = {}
        self._written = 0
        self._window_start: float | None = None
        self._thread = threading.Thread(target=self._copy, name=f"log {path.name}", daemon=True)

    def start(self) -> None:
        """Begin copying; call once the child holds the write end (ours is closed here)."""
        os.close(self.writer)
        self._thread.start()

    def close(self, timeout_s: float = 2.0) -> None:
        """Wait briefly for the last lines (a surviving grandchild may hold the pipe open)."""
        self._thread.join(timeout=timeout_s)

    def admit(self, line: bytes, now: float) -> list[bytes]:
        """The lines to write for ``line`` arriving at ``now`` (reports of drops included)."""
        out = self._roll(now)
        shape = _VARYING.sub(b"#", line)
        self._shapes[shape] += 1
        if self._shapes[shape] > self.per_shape or self._written >= self.per_minute:
            count, sample = self._dropped.get(shape, (0, line))
            self._dropped[shape] = (count + 1, sample)
            return out
        self._written += 1
        return [*out, line]

    def _roll(self, now: float) -> list[bytes]:
        if self._window_start is None:
            self._window_start = now
        if now - self._window_start < 60:
            return []
        reports = [
            b"[knowledge up] %d more lines like this one were dropped in the last minute: %s"
            % (count, sample.rstrip(b"\n")[:300])
            + b"\n"
            for count, sample in self._dropped.values()
        ]
        self._shapes.clear()
        self._dropped.clear()
        self._written = 0
        self._window_start = now
        return reports

    def _copy(self) -> None:
        with self._reader, self.log:
            for line in self._reader:
                for out in self.admit(line, time.monotonic()):
                    self.log.write(out)
            for out in self._roll(float("inf")):
                self.log.write(out)
