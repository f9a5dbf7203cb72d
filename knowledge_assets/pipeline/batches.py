"""Staging a batch: document bytes stored content-addressed, plus a manifest keyed by batch id.

Every worker reads a batch from here, so submitting (API, sensor, CLI) and running (any process,
any host sharing the storage folder or bucket, ``object_store.py``) are decoupled. Writes are
atomic and idempotent: staging the same documents twice yields the same batch id and rewrites
nothing. A manifest is the batch's record: written once, by the first submission, and never
changed afterwards.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from upath import UPath

from knowledge_assets.pipeline.documents import prepare_inputs
from knowledge_assets.pipeline.models import (
    Batch,
    DocumentInput,
    DocumentRejection,
    ExtractorInfo,
    Frozen,
)
from knowledge_assets.pipeline.object_store import (
    create_object,
    modified_times,
    read_object,
    write_object,
)

BATCH_ID = re.compile(r"^b[0-9a-f]{16}$")
Source = Literal["cli", "inbox", "api", "python"]


class ManifestEntry(Frozen):
    """One submitted document: its name and the SHA-256 of its raw bytes.

    ``document_id`` and ``sha256`` (of the decoded text) identify the version it submits;
    manifests staged before versions existed have neither (they are computed when needed).
    """

    name: str
    blob: str
    size: int
    document_id: str | None = None
    sha256: str | None = None


class BatchManifest(Frozen):
    """Everything needed to run a batch anywhere: documents, refusals, ontology, extractor.

    ``source`` and ``submitted_at`` say how and when the batch was first submitted; they are not
    part of the batch id (a pure function of the content), and a later submission of the same
    content leaves them as they are. Manifests staged before they existed have neither.
    """

    batch_id: str
    documents: tuple[ManifestEntry, ...]
    rejections: tuple[DocumentRejection, ...] = ()
    ontology_hash: str
    extractor: ExtractorInfo
    source: Source | None = None
    submitted_at: datetime | None = None


class UnknownBatchError(KeyError):
    """No manifest exists for the batch id."""


class NothingAccepted(ValueError):
    """Every document of a submission was refused: no batch is made, nothing is queued."""

    def __init__(self, rejections: Sequence[DocumentRejection]) -> None:
        reasons = "; ".join(r.reason for r in rejections) or "no documents"
        super().__init__(f"every document was refused: {reasons}")
        self.rejections = tuple(rejections)


class BatchStorage:
    """Blobs under ``root/blobs/ab/abcdef…`` and manifests under ``root/batches/<id>.json``."""

    def __init__(self, root: UPath | Path) -> None:
        self.root = root

    def stage(
        self,
        items: Sequence[DocumentInput],
        *,
        max_bytes: int,
        ontology_hash: str,
        extractor: ExtractorInfo,
        refused: Sequence[DocumentRejection] = (),
        source: Source = "python",
    ) -> BatchManifest:
        """Store the documents and the batch's manifest; return the manifest of record.

        Its id is the idempotency key. If the batch was staged before, nothing is rewritten and
        the first manifest is returned. Raises ``NothingAccepted`` (and stores nothing) when no
        document is accepted.
        """
        accepted, rejections = prepare_inputs(items, max_bytes=max_bytes)
        refusals = (*refused, *rejections)
        if not accepted:
            raise NothingAccepted(refusals)
        documents = [document for _, document in accepted]
        batch = Batch.create(documents, refusals, ontology_hash, extractor)
        entries = [
            ManifestEntry(
                name=d.name,
                blob=self.put_blob(item.data),
                size=len(item.data),
                document_id=d.id,
                sha256=d.sha256,
            )
            for item, d in accepted
        ]
        manifest = BatchManifest(
            batch_id=batch.id,
            documents=tuple(sorted(entries, key=lambda e: e.name)),
            rejections=refusals,
            ontology_hash=ontology_hash,
            extractor=extractor,
            source=source,
            submitted_at=datetime.now(UTC),
        )
        record = manifest.model_dump_json().encode()
        if create_object(self.manifest_path(batch.id), record, sync=True):
            return manifest
        return self.manifest(batch.id)

    def put_blob(self, data: bytes) -> str:
        """Store bytes under their SHA-256 and return it."""
        digest = hashlib.sha256(data).hexdigest()
        path = self._blob_path(digest)
        if not path.exists():
            write_object(path, data, sync=True)
        return digest

    def holds(self, data: bytes) -> bool:
        """Whether these bytes were stored before (as a document of some staged batch)."""
        return self._blob_path(hashlib.sha256(data).hexdigest()).is_file()

    def read_blob(self, digest: str) -> bytes:
        """The bytes stored under ``digest``, verified."""
        data = read_object(self._blob_path(digest))
        if hashlib.sha256(data).hexdigest() != digest:
            raise ValueError(f"stored document {digest} is corrupt (hash mismatch)")
        return data

    def manifest(self, batch_id: str) -> BatchManifest:
        """The manifest of a staged batch."""
        path = self.manifest_path(batch_id)
        if not path.is_file():
            raise UnknownBatchError(batch_id)
        return BatchManifest.model_validate_json(read_object(path))

    def inputs(self, manifest: BatchManifest, without: Collection[str] = ()) -> list[DocumentInput]:
        """The batch's documents as submitted, read back from blob storage.

        ``without`` names documents to leave out (deleted ones, whose bytes are forgotten).
        """
        return [
            DocumentInput(name=e.name, data=self.read_blob(e.blob))
            for e in manifest.documents
            if e.name not in without
        ]

    def batch_ids_newest_first(self) -> list[str]:
        """Every staged batch, most recently staged first."""
        staged = modified_times(self.root / "batches", ".json")
        ids = [batch_id for batch_id in staged if BATCH_ID.match(batch_id)]
        ids.sort(key=lambda batch_id: (staged[batch_id], batch_id), reverse=True)
        return ids

    def manifest_path(self, batch_id: str) -> UPath | Path:
        """Where a batch's manifest lives; refuses ids that are not batch ids."""
        if not BATCH_ID.match(batch_id):
            raise UnknownBatchError(batch_id)
        return self.root / "batches" / f"{batch_id}.json"

    def forget_blob(self, digest: str) -> bool:
        """Delete a stored document's bytes; whether they were there."""
        blob = self._blob_path(digest)
        if not blob.exists():
            return False
        blob.unlink(missing_ok=True)
        return True

    def manifests(self) -> Iterator[BatchManifest]:
        """Every staged batch's manifest (in no particular order), one listing on S3."""
        for batch_id in modified_times(self.root / "batches", ".json"):
            if BATCH_ID.match(batch_id):
                yield self.manifest(batch_id)

    def _blob_path(self, digest: str) -> UPath | Path:
        if not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise ValueError(f"not a blob digest: {digest!r}")
        return self.root / "blobs" / digest[:2] / digest
