"""The inbox folder: settled files become a staged batch; unreadable ones are moved aside."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from knowledge_assets.pipeline.batches import BatchManifest, BatchStorage
from knowledge_assets.pipeline.documents import read_paths, safe_name
from knowledge_assets.pipeline.models import DocumentRejection, ExtractorInfo

SUBMITTED = ".submitted"
REJECTED = ".rejected"
_PARTIAL_SUFFIXES = (".part", ".tmp", ".partial", ".crdownload", ".swp")


@dataclass
class InboxScan:
    """What one look at the inbox found."""

    manifest: BatchManifest | None = None
    files: list[str] = field(default_factory=list)
    rejected: list[DocumentRejection] = field(default_factory=list)


class Inbox:
    """Files dropped into ``root``; a file counts once it has not changed for ``settle_s``.

    Writers that want to be exact can write ``name.part`` and rename it when done: names with a
    partial-download suffix and hidden names are never picked up.
    """

    def __init__(self, root: Path, *, settle_s: float = 2.0) -> None:
        self.root = root
        self.settle_s = settle_s

    def settled_files(self, now: float | None = None) -> list[Path]:
        """Regular, visible, complete files old enough to be finished, sorted by name."""
        if not self.root.is_dir():
            return []
        now = time.time() if now is None else now
        found = []
        for path in sorted(self.root.iterdir()):
            if path.name.startswith(".") or path.name.endswith(_PARTIAL_SUFFIXES):
                continue
            if path.is_symlink() or not path.is_file():
                continue
            if now - path.stat().st_mtime >= self.settle_s:
                found.append(path)
        return found

    def scan(
        self, storage: BatchStorage, *, max_bytes: int, ontology_hash: str, extractor: ExtractorInfo
    ) -> InboxScan:
        """Stage settled files as one batch; move refused ones to ``.rejected`` with a reason."""
        paths = self.settled_files()
        if not paths:
            return InboxScan()
        items, refused = read_paths(paths, max_bytes=max_bytes)
        manifest = None
        if items:
            manifest = storage.stage(
                items,
                max_bytes=max_bytes,
                ontology_hash=ontology_hash,
                extractor=extractor,
                refused=refused,
            )
        rejections = list(manifest.rejections if manifest else refused)
        for rejection in rejections:
            self._reject(paths, rejection)
        return InboxScan(
            manifest=manifest if manifest and manifest.documents else None,
            files=[p.name for p in paths if p.exists()],
            rejected=rejections,
        )

    def archive(self, batch_id: str, names: list[str]) -> None:
        """Move a submitted batch's files out of the way (after its run was requested)."""
        target = self.root / SUBMITTED / batch_id
        for name in names:
            source = self.root / name
            if source.exists():
                target.mkdir(parents=True, exist_ok=True)
                shutil.move(str(source), target / name)

    def _reject(self, paths: list[Path], rejection: DocumentRejection) -> None:
        target = self.root / REJECTED
        for path in paths:
            if rejection.name in (path.stem, path.name, safe_name(path.stem)):
                target.mkdir(parents=True, exist_ok=True)
                if path.exists():
                    shutil.move(str(path), target / path.name)
                reason = f"{rejection.code}: {rejection.reason}\n"
                (target / f"{path.name}.reason.txt").write_text(reason, encoding="utf-8")
