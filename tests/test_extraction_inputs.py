"""What extraction depends on: the offline model's raw output is cached apart from the ontology.

An ontology change re-maps the cached raw output and calls the model zero times; an LLM's
prompt names the ontology, so a change there calls the endpoint again. Costs are counted.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from knowledge_assets.db import tables as t
from knowledge_assets.db.engine import engine_for
from knowledge_assets.pipeline import stages
from knowledge_assets.pipeline.extractors.factory import build_extractor
from knowledge_assets.pipeline.extractors.offline import SpacyExtractor
from knowledge_assets.pipeline.extractors.raw_doc import RawDoc, raw_output
from knowledge_assets.pipeline.ontology import load_ontology
from knowledge_assets.pipeline.pipeline import ExtractionPipeline
from knowledge_assets.settings import Settings
from tests.corpus import synthetic_documents
from tests.durability import llm_environment
from tests.fakes.openai_server import FakeOpenAI, tokens
from tests.lifecycle import changed_ontology, comparable, demo_inputs, differences


def test_the_cached_raw_output_maps_exactly_as_the_parsed_document(settings: Settings) -> None:
    extractor = build_extractor(settings, load_ontology(None))
    assert isinstance(extractor, SpacyExtractor)
    prepared = stages.prepare(list(demo_inputs().values()), max_bytes=10**6)
    chunk_set = stages.chunk(prepared, max_chars=settings.chunk_max_chars)
    docs = extractor.nlp.pipe(c.text for c in chunk_set.chunks)
    for chunk, doc in zip(chunk_set.chunks, docs, strict=True):
        mapped = extractor.mapper.map_doc(doc)
        assert extractor.map_raw(chunk, raw_output(doc)) == mapped
        assert RawDoc.parse(chunk.text, raw_output(doc)).ents[0].text == doc.ents[0].text


def test_an_ontology_change_makes_no_model_call_and_equals_a_fresh_build(
    settings: Settings, reference_url: str, tmp_path: Path
) -> None:
    items = list(demo_inputs().values())
    first = ExtractionPipeline(settings).run(items)
    assert first.extractor_calls == first.chunks > 0
    assert _predicates(settings) >= {"acquired"}

    changed = settings.model_copy(update={"ontology": changed_ontology(tmp_path)})
    again = ExtractionPipeline(changed).run(items)
    assert (again.extractor_calls, again.cache_hits) == (0, first.chunks)
    assert "acquired" not in _predicates(changed)
    fresh = changed.model_copy(update={"database_url": reference_url})
    ExtractionPipeline(fresh).run(items)
    assert _types(changed) >= {"City"}
    got, expected = comparable(engine_for(_url(changed))), comparable(engine_for(reference_url))
    assert got == expected, differences(got, expected)


def test_an_llm_prompt_that_changed_calls_the_endpoint_again_and_counts_tokens(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    items = synthetic_documents(2, sentences=2)
    with FakeOpenAI() as fake:
        for key, value in llm_environment(fake).items():
            monkeypatch.setenv(key, value)
        llm = Settings()
        first = ExtractionPipeline(llm).run(items)
        assert first.extractor_calls == first.chunks == len(fake.requests) > 0
        sent = sum(tokens(str(m["content"])) + 4 for r in fake.requests for m in r.messages)
        assert first.prompt_tokens == sent > 0
        assert first.completion_tokens > 0
        assert sum(c["prompt_tokens"] for c in first.costs) == sent
        assert all(c["seconds"] > 0 for c in first.costs)

        assert ExtractionPipeline(llm).run(items).extractor_calls == 0
        changed = llm.model_copy(update={"ontology": changed_ontology(tmp_path)})
        again = ExtractionPipeline(changed).run(items)
        assert again.extractor_calls == first.chunks, "a new prompt is a new question"
        assert len(fake.requests) == 2 * first.chunks


def _url(settings: Settings) -> str:
    assert settings.database_url is not None
    return settings.database_url


def _predicates(settings: Settings) -> set[str]:
    with engine_for(_url(settings)).connect() as connection:
        return set(connection.execute(sa.select(t.relations.c.predicate)).scalars())


def _types(settings: Settings) -> set[str]:
    with engine_for(_url(settings)).connect() as connection:
        return set(connection.execute(sa.select(t.entity_types.c.type)).scalars())
