"""Forgetting a deleted document's files: its stored bytes and the inbox's copies of it.

The database half of forgetting happens in the deletion's transaction (``apply.delete``); the
files are removed after it commits, and again on a retry, since removing is idempotent. Bytes
another document still uses (the same content under another name, or submitted again after
the deletion) stay.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from knowledge_assets.pipeline.batches import BatchStorage, UnknownBatchError
from knowledge_assets.pipeline.documents import document_name
from knowledge_assets.pipeline.inbox import SUBMITTED
from knowledge_assets.pipeline.lifecycle.versions import Version

__all__ = ["ForgottenFiles", "forget_files"]


@dataclass
class ForgottenFiles:
    """Files removed: stored blobs and inbox copies."""

    blobs: list[str] = field(default_factory=list)
    inbox_copies: list[str] = field(default_factory=list)


def forget_files(storage: BatchStorage, inbox: Path, versions: Iterable[Version]) -> ForgottenFiles:
    """Remove the stored bytes and archived inbox files of the given (forgotten) versions."""
    forgotten = {(v.batch_id, v.name) for v in versions if not v.deleted}
    digests: set[str] = set()
    for batch_id in sorted({b for b, _ in forgotten}):
        try:
            manifest = storage.manifest(batch_id)
        except UnknownBatchError:
            continue  # a batch of the direct path: nothing was stored
        digests.update(e.blob for e in manifest.documents if (batch_id, e.name) in forgotten)
    still_used = {
        e.blob
        for manifest in storage.manifests()
        for e in manifest.documents
        if e.blob in digests and (manifest.batch_id, e.name) not in forgotten
    }
    removed = ForgottenFiles()
    for digest in sorted(digests - still_used):
        if storage.forget_blob(digest):
            removed.blobs.append(digest)
    for batch_id, name in sorted(forgotten):
        removed.inbox_copies.extend(_forget_copies(inbox / SUBMITTED / batch_id, name))
    return removed


def _forget_copies(folder: Path, name: str) -> list[str]:
    if not folder.is_dir():
        return []
    gone = []
    for path in sorted(folder.rglob("*")):
        if path.is_file() and document_name(path.relative_to(folder).as_posix()) == name:
            path.unlink()
            gone.append(path.relative_to(folder.parent).as_posix())
    return gone
