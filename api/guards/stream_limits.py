"""A cap on concurrent event streams per credential, so one client cannot exhaust the server."""

from __future__ import annotations

import threading
from collections import Counter

from api.errors import ApiError

__all__ = ["StreamLimiter"]


class StreamLimiter:
    """Counts open streams per principal in this process (each API replica has its own cap)."""

    def __init__(self, per_principal: int, retry_after_s: int) -> None:
        self.per_principal = per_principal
        self.retry_after_s = retry_after_s
        self._open: Counter[str] = Counter()
        self._lock = threading.Lock()

    def acquire(self, principal: str) -> None:
        """Take a slot, or raise 429 with ``Retry-After`` when the principal has none left."""
        with self._lock:
            if self._open[principal] >= self.per_principal:
                raise ApiError(
                    429,
                    "too_many_streams",
                    f"at most {self.per_principal} concurrent event streams per token",
                    headers={"Retry-After": str(self.retry_after_s)},
                )
            self._open[principal] += 1

    def release(self, principal: str) -> None:
        """Give a slot back (once per successful ``acquire``)."""
        with self._lock:
            self._open[principal] -= 1
            if self._open[principal] <= 0:
                del self._open[principal]
