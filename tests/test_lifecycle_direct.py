"""The living graph through the direct pipeline: delete, update, one live version per name."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence

import pytest
import sqlalchemy as sa

from knowledge_assets.db import tables as t
from knowledge_assets.db.engine import engine_for
from knowledge_assets.pipeline.export import export
from knowledge_assets.pipeline.lifecycle.requests import UnknownDocuments
from knowledge_assets.pipeline.models import DocumentInput
from knowledge_assets.pipeline.pipeline import ExtractionPipeline, delete_directly
from knowledge_assets.pipeline.registry import sync_registry
from knowledge_assets.settings import Settings
from tests.lifecycle import (
    MARKER,
    comparable,
    demo_inputs,
    differences,
    marked,
    tables_containing,
)

A = ["harbor-energy-ceo.txt", "northwind-acquisition.txt", "port-strike.txt"]
B = ["research-lab.txt", "summit-geneva.txt"]


@pytest.fixture
def pipeline(settings: Settings) -> Iterator[ExtractionPipeline]:
    pipeline = ExtractionPipeline(settings)
    yield pipeline
    pipeline.close()


def build(pipeline: ExtractionPipeline, *batches: Sequence[DocumentInput]) -> None:
    """Run each batch in order, the registry following each, as the platform does."""
    for items in batches:
        pipeline.run(items)
        sync_registry(pipeline.engine, pipeline.ontology)


def fresh(settings: Settings, url: str, *batches: Sequence[DocumentInput]) -> object:
    reference = ExtractionPipeline(settings.model_copy(update={"database_url": url}))
    build(reference, *batches)
    return comparable(engine_for(url))


def documents(*names: str) -> list[DocumentInput]:
    corpus = demo_inputs()
    return [corpus[n] for n in names]


@pytest.mark.parametrize("together", [True, False], ids=["one batch", "two batches"])
def test_deleting_b_from_a_and_b_leaves_a_fresh_build_of_a(
    pipeline: ExtractionPipeline, settings: Settings, reference_url: str, together: bool
) -> None:
    a, b = documents(*A), [*documents(*B), marked("He works for Harbor Energy in Rotterdam.")]
    build(pipeline, a + b) if together else build(pipeline, a, b)
    done = delete_directly(settings, [d.name for d in b])
    assert done.deleted == sorted(d.name for d in b)
    assert done.forgotten_cache_entries > 0
    got, expected = comparable(pipeline.engine), fresh(settings, reference_url, a)
    assert got == expected, differences(got, expected)
    assert tables_containing(pipeline.engine, MARKER) == []


def test_deleting_again_changes_nothing_and_an_unknown_name_is_refused(
    pipeline: ExtractionPipeline, settings: Settings
) -> None:
    build(pipeline, documents(*A))
    first = delete_directly(settings, [A[0]])
    before = comparable(pipeline.engine)
    again = delete_directly(settings, [A[0]])
    assert again.deletion_id is None and again.earlier == {A[0]: first.deletion_id}
    assert comparable(pipeline.engine) == before
    with pytest.raises(UnknownDocuments, match=r"never-submitted\.txt"):
        delete_directly(settings, ["never-submitted.txt"])


def test_an_edited_batch_submitted_again_equals_a_fresh_build_of_the_edit(
    pipeline: ExtractionPipeline, settings: Settings, reference_url: str
) -> None:
    original = documents(*A)
    text = original[1].data.decode().replace("Northwind Logistics", "Southwind Freight")
    edited = [original[0], DocumentInput(name=original[1].name, data=text.encode()), original[2]]
    build(pipeline, original, edited)
    got, expected = comparable(pipeline.engine), fresh(settings, reference_url, edited)
    assert got == expected, differences(got, expected)


def test_one_edited_document_replaces_its_old_version_in_its_old_batch(
    pipeline: ExtractionPipeline, settings: Settings, reference_url: str
) -> None:
    original = documents(*A)
    text = original[1].data.decode().replace("Northwind Logistics", "Southwind Freight")
    edit = [DocumentInput(name=original[1].name, data=text.encode())]
    build(pipeline, original, edit)
    rest = [original[0], original[2]]
    got, expected = comparable(pipeline.engine), fresh(settings, reference_url, rest, edit)
    assert got == expected, differences(got, expected)


def test_two_batches_with_a_notes_txt_keep_one_live_document_listed_once(
    pipeline: ExtractionPipeline, settings: Settings
) -> None:
    first = DocumentInput(name="notes.txt", data=b"Maria Okafor visited Rotterdam on Monday.")
    second = DocumentInput(name="notes.txt", data=b"Maria Okafor visited Lagos on Friday.")
    build(pipeline, [first, *documents(A[0])], [second])
    with pipeline.engine.connect() as connection:
        names = connection.execute(sa.select(t.documents.c.name)).scalars().all()
        texts = connection.execute(sa.select(t.documents.c.text)).scalars().all()
    assert sorted(names) == sorted(["notes.txt", A[0]])
    assert second.data.decode() in texts and first.data.decode() not in texts
    lines = [json.loads(line) for line in export(pipeline.engine, pipeline.ontology, "mentions")]
    spans = [(m["doc_id"], m["start"], m["end"]) for m in lines]
    assert len(spans) == len(set(spans))
    notes = {m["text"] for m in lines if m["doc_id"] == "notes.txt"}
    assert "Lagos" in notes and "Rotterdam" not in notes
    turtle = "".join(export(pipeline.engine, pipeline.ontology, "ttl"))
    assert "Lagos" in turtle
