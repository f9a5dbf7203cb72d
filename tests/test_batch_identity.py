"""A batch's id covers everything submitted, and its record (the manifest) never changes."""

from __future__ import annotations

from pathlib import Path

import pytest

from knowledge_assets.pipeline import stages
from knowledge_assets.pipeline.batches import BatchManifest, BatchStorage, NothingAccepted
from knowledge_assets.pipeline.models import Batch, DocumentInput, ExtractorInfo

LIMIT = 1_000
EXTRACTOR = ExtractorInfo(name="offline", version="1", config_hash="c0")
GOOD = DocumentInput(name="good.txt", data=b"Ada Lovelace met Charles Babbage in London.")
EMPTY = DocumentInput(name="empty.txt", data=b"")
LATIN1 = DocumentInput(name="latin1.txt", data="Caf\u00e9 cr\u00e8me".encode("latin-1"))
HUGE = DocumentInput(name="huge.txt", data=b"x" * (LIMIT + 1))


def stage(storage: BatchStorage, *items: DocumentInput, source: str = "python") -> BatchManifest:
    return storage.stage(
        items,
        max_bytes=LIMIT,
        ontology_hash="o1",
        extractor=EXTRACTOR,
        source=source,  # type: ignore[arg-type]
    )


def manifests(storage: BatchStorage) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (storage.root / "batches").glob("*.json")}


def test_submissions_whose_every_document_is_refused_stage_nothing(tmp_path: Path) -> None:
    storage = BatchStorage(tmp_path)
    reasons = []
    for bad in (EMPTY, LATIN1, DocumentInput(name="blank.txt", data=b"  \n"), HUGE):
        with pytest.raises(NothingAccepted) as refused:
            stage(storage, bad)
        (rejection,) = refused.value.rejections
        assert rejection.name == bad.name
        reasons.append(rejection.reason)
    assert len(set(reasons)) == 4
    assert not (tmp_path / "batches").exists()
    assert not (tmp_path / "blobs").exists()


def test_refused_documents_are_part_of_the_batch_id(tmp_path: Path) -> None:
    storage = BatchStorage(tmp_path)
    alone = stage(storage, GOOD)
    with_bad = stage(storage, GOOD, EMPTY, LATIN1)
    with_other_bad = stage(storage, GOOD, EMPTY)
    ids = {alone.batch_id, with_bad.batch_id, with_other_bad.batch_id}
    assert len(ids) == 3
    assert [r.name for r in with_bad.rejections] == ["empty.txt", "latin1.txt"]
    assert alone.rejections == ()
    records = manifests(storage)
    assert len(records) == 3

    # Submitting all of them again, in another order, changes no record.
    assert stage(storage, LATIN1, EMPTY, GOOD, source="api") == with_bad
    assert stage(storage, GOOD, source="cli") == alone
    assert manifests(storage) == records
    assert storage.manifest(alone.batch_id).source == "python"


def test_a_changed_refused_document_is_another_batch(tmp_path: Path) -> None:
    storage = BatchStorage(tmp_path)
    first = stage(storage, GOOD, DocumentInput(name="bad.txt", data=b"\xff\xfe\x00bad"))
    second = stage(storage, GOOD, DocumentInput(name="bad.txt", data=b"\xff\xfe\x00worse"))
    third = stage(storage, GOOD, DocumentInput(name="huge.txt", data=b"y" * (LIMIT + 1)))
    fourth = stage(storage, GOOD, HUGE)
    assert first.batch_id != second.batch_id
    # Too large documents are known by size alone: a reader may refuse them unread.
    assert third.batch_id == fourth.batch_id


def test_the_direct_pipeline_and_staging_agree_on_the_batch_id(tmp_path: Path) -> None:
    items = [GOOD, EMPTY]
    staged = stage(BatchStorage(tmp_path), *items)
    prepared = stages.prepare(items, max_bytes=LIMIT)
    direct = Batch.create(prepared.documents, prepared.rejections, "o1", EXTRACTOR)
    assert direct.id == staged.batch_id


def test_source_and_time_are_kept_out_of_the_id(tmp_path: Path) -> None:
    one = stage(BatchStorage(tmp_path / "one"), GOOD, source="cli")
    other = stage(BatchStorage(tmp_path / "other"), GOOD, source="inbox")
    assert one.batch_id == other.batch_id
    assert (one.source, other.source) == ("cli", "inbox")
    assert one.submitted_at is not None and other.submitted_at is not None
