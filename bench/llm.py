"""LLM path: 500 chunks against our local OpenAI-compatible server answering in 200 ms.

Besides the time, each concurrency reports the client's and the fake server's CPU per answer: on
two shared cores the answers of a wave arrive together and their processing is serialised, so
the CPU per answer is what stretches each wave beyond 200 ms.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection
from typing import Any

from pydantic import SecretStr

from bench.common import corpus_paths
from bench.launched import database_server, fresh_database
from knowledge_assets.db.engine import engine_for
from knowledge_assets.db.migrate import ensure_migrated
from knowledge_assets.pipeline import stages
from knowledge_assets.pipeline.cache import CachedExtraction, ExtractionCache
from knowledge_assets.pipeline.documents import read_paths
from knowledge_assets.pipeline.extractors.llm import LLMExtractor
from knowledge_assets.pipeline.models import Chunk
from knowledge_assets.pipeline.ontology import load_ontology
from knowledge_assets.settings import Settings
from tests.fakes.openai_server import FakeOpenAI, RecordedRequest, capitalised_people

CHUNKS = 500
LATENCY_S = 0.2
CONCURRENCY = (8, 32)
TARGET = 1.15


def run() -> dict[str, Any]:
    """Each concurrency on a cold cache, then the same chunks again (all from the cache)."""
    chunks = _chunks(CHUNKS)
    figures: dict[str, Any] = {"benchmark": "llm", "chunks": len(chunks), "latency_s": LATENCY_S}
    with database_server() as admin:
        for concurrency in CONCURRENCY:
            figures.update(_trial(admin, chunks, concurrency))
    figures["target"] = f"first run <= {TARGET} x chunks x latency / C; repeat makes 0 calls"
    figures["met"] = all(
        figures[f"ratio_to_ideal_c{c}"] <= TARGET and figures[f"repeat_calls_c{c}"] == 0
        for c in CONCURRENCY
    )
    figures["load_avg_1m"] = round(os.getloadavg()[0], 2)
    return figures


def _chunks(count: int) -> list[Chunk]:
    settings = Settings()
    items, _ = read_paths(corpus_paths())
    prepared = stages.prepare(items, max_bytes=settings.max_document_bytes)
    chunks = stages.chunk(prepared, max_chars=settings.chunk_max_chars).chunks
    return list(chunks[:count])


def _trial(admin: str, chunks: list[Chunk], concurrency: int) -> dict[str, Any]:
    ideal = len(chunks) * LATENCY_S / concurrency
    with fresh_database(admin) as url, server_process() as server:
        engine = engine_for(url)
        ensure_migrated(engine)
        settings = Settings(
            database_url=url,
            extractor="llm",
            llm_base_url=server.ask("base_url"),
            llm_api_key=SecretStr("bench-key"),
            llm_concurrency=concurrency,
        )
        extractor = LLMExtractor(settings, load_ontology())
        try:
            server_cpu = server.ask("cpu_s")
            first = _timed_run(engine, extractor, chunks)
            server_cpu = server.ask("cpu_s") - server_cpu
            calls = server.ask("requests")
            repeat = _timed_run(engine, extractor, chunks)
            repeat_calls = server.ask("requests") - calls
        finally:
            extractor.close()
        in_flight = server.ask("max_in_flight")
    c = concurrency
    return {
        f"ideal_s_c{c}": round(ideal, 2),
        f"first_s_c{c}": round(first[0], 2),
        f"ratio_to_ideal_c{c}": round(first[0] / ideal, 3),
        f"first_calls_c{c}": calls,
        f"failures_c{c}": first[1],
        f"client_cpu_ms_per_answer_c{c}": round(1000 * first[2] / max(calls, 1), 2),
        f"server_cpu_ms_per_answer_c{c}": round(1000 * server_cpu / max(calls, 1), 2),
        f"max_in_flight_c{c}": in_flight,
        f"repeat_s_c{c}": round(repeat[0], 2),
        f"repeat_calls_c{c}": repeat_calls,
    }


def _timed_run(
    engine: Any, extractor: LLMExtractor, chunks: list[Chunk]
) -> tuple[float, int, float]:
    """Seconds, failed chunks, and this process's CPU seconds (the client's work per answer)."""
    extraction = CachedExtraction(ExtractionCache(engine), extractor)
    cpu = _cpu_s()
    began = time.perf_counter()
    for _ in extraction.run(chunks):
        pass
    return time.perf_counter() - began, extraction.stats.failures, _cpu_s() - cpu


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class _Remote:
    """The fake server in its own process, so it does not share our interpreter lock."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def ask(self, question: str) -> Any:
        """``base_url``, ``requests`` (count so far), ``max_in_flight`` or ``cpu_s`` (its CPU)."""
        self.connection.send(question)
        if not self.connection.poll(30):
            raise RuntimeError("the fake LLM server process did not answer within 30 s")
        return self.connection.recv()


@contextmanager
def server_process(*, host: str = "127.0.0.1", mentions: bool = True) -> Iterator[_Remote]:
    """The fake endpoint (200 ms an answer) in a process of its own; without ``mentions`` every
    answer is empty, so a batch's other stages have (almost) nothing to do."""
    ours, theirs = multiprocessing.Pipe()
    context = multiprocessing.get_context("spawn")
    process = context.Process(target=_serve, args=(theirs, host, mentions))
    process.start()
    try:
        yield _Remote(ours)
    finally:
        ours.send("stop")
        process.join(timeout=30)


def _no_mentions(request: RecordedRequest) -> str:
    return '{"mentions": [], "relations": []}'


def _serve(connection: Connection, host: str, mentions: bool) -> None:
    responder = capitalised_people if mentions else _no_mentions
    with FakeOpenAI(responder, default_delay=LATENCY_S, host=host) as server:
        answers = {
            "base_url": lambda: server.base_url,
            "requests": lambda: len(server.requests),
            "max_in_flight": lambda: server.max_in_flight,
            "cpu_s": _cpu_s,
        }
        while (question := connection.recv()) != "stop":
            connection.send(answers[question]())
