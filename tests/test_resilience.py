"""The direct pipeline under failure: a restarted database, an LLM that answers garbage or 429s."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr

from knowledge_assets.db.embedded import EmbeddedPostgres
from knowledge_assets.db.engine import engine_for
from knowledge_assets.demo import CORPUS_DIR
from knowledge_assets.pipeline.models import DocumentInput
from knowledge_assets.pipeline.pipeline import ExtractionPipeline
from knowledge_assets.pipeline.store import GraphStore
from knowledge_assets.settings import Settings
from tests.fakes.openai_server import FakeOpenAI, Reply


def test_database_restart_between_batches_loses_nothing(
    own_server: EmbeddedPostgres, tmp_path: Path
) -> None:
    url = own_server.start()
    settings = Settings(home=tmp_path, database_url=url)
    pipeline = ExtractionPipeline(settings, engine=engine_for(url))
    first = pipeline.run_paths([CORPUS_DIR])
    before = GraphStore(pipeline.engine).snapshot()

    postmaster = own_server.pgdata / "postmaster.pid"
    old_pid = postmaster.read_text().split()[0]
    own_server.restart()
    assert postmaster.read_text().split()[0] != old_pid

    again = pipeline.run_paths([CORPUS_DIR])
    assert again.extractor_calls == 0
    assert again.cache_hits == first.chunks
    assert GraphStore(pipeline.engine).snapshot() == before
    engine_for(url).dispose()


def test_llm_garbage_and_rate_limits_quarantine_one_chunk_and_keep_the_rest(
    settings: Settings,
) -> None:
    with FakeOpenAI() as server:
        server.script(
            Reply.error(429, retry_after="0", match="Ada Lovelace"),
            Reply.garbage(match="Grace Hopper"),
            Reply.garbage(match="Grace Hopper"),
        )
        llm = settings.model_copy(
            update={
                "extractor": "llm",
                "llm_base_url": server.base_url,
                "llm_api_key": SecretStr("test-key"),
                "llm_backoff_base_s": 0.01,
                "llm_backoff_max_s": 0.05,
            }
        )
        pipeline = ExtractionPipeline(llm)
        docs = [
            DocumentInput(name="ada", data=b"Ada Lovelace wrote notes in London."),
            DocumentInput(name="grace", data=b"Grace Hopper joined the Navy."),
        ]
        result = pipeline.run(docs)
        pipeline.close()
    assert result.documents == 2
    assert result.extractor_calls == 2
    assert result.quarantined >= 1
    store = GraphStore(pipeline.engine).snapshot()
    chunk_failures = [row for row in store["quarantine"] if row[2] == "chunk"]
    assert len(chunk_failures) == 1
    assert "invalid LLM answer" in chunk_failures[0][4]
    assert any(row[5] == "Ada Lovelace" for row in store["mentions"])

    with FakeOpenAI() as server:
        llm = llm.model_copy(update={"llm_base_url": server.base_url})
        rerun = ExtractionPipeline(llm).run(docs)
        # Failures are never cached: only the failed chunk goes back to the model.
        assert rerun.extractor_calls == 1
        assert rerun.cache_hits == 1
