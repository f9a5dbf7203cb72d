"""Submitted ontologies are checked in a child process, with a size, CPU, memory and time limit.

A Turtle parser and rdflib's graph comparison can be made to work for minutes on a kilobyte
(issue 16: a 1.5 KB ontology of blank nodes took 56 s of the API's CPU, and 40 of them stalled
``/healthz`` for 15 s). So the API never parses one itself: text over
``KNOWLEDGE_API_MAX_ONTOLOGY_BYTES`` is refused with 413 unread, and the rest goes to a child
forked from a pre-warmed server (rdflib already imported) that runs
``knowledge_assets.pipeline.ontology_check.check_submitted`` under ``RLIMIT_CPU`` and
``RLIMIT_AS``. The event loop only awaits; at most ``max_concurrent`` children run at once, and a
child still busy at the deadline is killed, so a client that leaves costs at most that long.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import resource
from multiprocessing.connection import Connection
from typing import Any

import anyio
import anyio.to_thread

from api.errors import ApiError
from knowledge_assets.pipeline.ontology_check import (
    ExpectedOntology,
    OntologyLimits,
    OntologyVerdict,
    check_submitted,
)

__all__ = ["OntologyGuard"]

_MEMORY_BYTES = 1 << 30  # a child may map 1 GiB: rdflib holds a 1 MB ontology in ~100 MB


class OntologyGuard:
    """Answers whether a submitted ontology text is the platform's, or raises the API error."""

    def __init__(
        self,
        expected: ExpectedOntology,
        *,
        max_bytes: int,
        timeout_s: float,
        limits: OntologyLimits | None = None,
        max_concurrent: int = 2,
    ) -> None:
        self.expected = expected
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s
        self.limits = limits or OntologyLimits()
        self._slots = anyio.CapacityLimiter(max_concurrent)
        self._context: Any = None

    def warm_up(self) -> None:
        """Start the fork server and fork one child, so the first real check pays no start-up."""
        self._in_child("")

    async def check(self, text: str) -> None:
        """Return if ``text`` is the platform's ontology; raise a 413 or 422 ``ApiError`` if not."""
        size = len(text.encode("utf-8"))
        if size > self.max_bytes:
            raise ApiError(
                413,
                "ontology_too_large",
                f"the submitted ontology has {size:,} bytes, over the limit of "
                f"{self.max_bytes:,} (KNOWLEDGE_API_MAX_ONTOLOGY_BYTES)",
            )
        async with self._slots:
            verdict = await anyio.to_thread.run_sync(self._in_child, text)
        if verdict.code is not None:
            raise ApiError(422, verdict.code, verdict.message)

    def _in_child(self, text: str) -> OntologyVerdict:
        receiver, sender = self._mp().Pipe(duplex=False)
        child = self._mp().Process(
            target=_check_in_child,
            args=(sender, text, self.expected, self.limits, self.timeout_s),
            daemon=True,
        )
        child.start()
        sender.close()
        try:
            if receiver.poll(self.timeout_s):
                verdict: OntologyVerdict = receiver.recv()
                return verdict
            return _too_slow(self.timeout_s)
        except EOFError:  # the child died: its CPU or memory limit, or a crash of the parser
            return _too_slow(self.timeout_s)
        finally:
            receiver.close()
            if child.is_alive():
                child.kill()
            child.join()

    def _mp(self) -> Any:
        # A fork server started on first use, with this module (so the checker, rdflib and the
        # child's entry point) imported once: each check then forks in milliseconds instead of
        # importing them again.
        if self._context is None:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload([__name__])
            self._context = context
        return self._context


def _check_in_child(
    sender: Connection,
    text: str,
    expected: ExpectedOntology,
    limits: OntologyLimits,
    timeout_s: float,
) -> None:
    """The child's whole life: limit itself, check, send the verdict."""
    os.nice(10)  # the API's own requests come first
    cpu_s = max(1, int(timeout_s + 0.999))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s))
    with contextlib.suppress(ValueError, OSError):  # some sandboxes refuse to lower it
        resource.setrlimit(resource.RLIMIT_AS, (_MEMORY_BYTES, _MEMORY_BYTES))
    try:
        verdict = check_submitted(text, expected, limits)
    except MemoryError:
        verdict = OntologyVerdict("ontology_too_complex", "checking the ontology ran out of memory")
    sender.send(verdict)
    sender.close()


def _too_slow(timeout_s: float) -> OntologyVerdict:
    return OntologyVerdict(
        "ontology_too_complex",
        f"the submitted ontology could not be checked within {timeout_s:g} s "
        "(KNOWLEDGE_API_ONTOLOGY_CHECK_TIMEOUT_S)",
    )
