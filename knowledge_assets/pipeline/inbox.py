"""The inbox folder: settled files become a staged batch; unreadable ones are moved aside.

Files may sit in folders inside the inbox: a document's name is its path relative to the inbox
(``reports/q1.txt``), the name ``knowledge submit`` gives it when that folder is submitted.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from knowledge_assets.pipeline.batches import BatchManifest, BatchStorage, NothingAccepted
from knowledge_assets.pipeline.documents import document_name, read_paths
from knowledge_assets.pipeline.models import DocumentRejection, ExtractorInfo

SUBMITTED = ".submitted"
REJECTED = ".rejected"
_PARTIAL_SUFFIXES = (".part", ".tmp", ".partial", ".crdownload", ".swp")


@dataclass
class InboxScan:
    """What one look at the inbox found: a staged batch (if any document was accepted)."""

    manifest: BatchManifest | None = None
    files: list[str] = field(default_factory=list)
    rejected: list[DocumentRejection] = field(default_factory=list)


class Inbox:
    """Files dropped into ``root``; a file counts once it has not changed for ``settle_s``.

    Writers that want to be exact can write ``name.part`` and rename it when done: names with a
    partial-download suffix and hidden names (files or folders) are never picked up.
    """

    def __init__(self, root: Path, *, settle_s: float = 2.0) -> None:
        self.root = root
        self.settle_s = settle_s

    def settled_files(self, now: float | None = None) -> list[Path]:
        """Regular, visible, complete files old enough to be finished, sorted by path."""
        if not self.root.is_dir():
            return []
        now = time.time() if now is None else now
        found = []
        for path in self._visible_files(self.root):
            with contextlib.suppress(FileNotFoundError):
                if now - path.stat().st_mtime >= self.settle_s:
                    found.append(path)
        return sorted(found, key=lambda p: p.relative_to(self.root).as_posix())

    def scan(
        self, storage: BatchStorage, *, max_bytes: int, ontology_hash: str, extractor: ExtractorInfo
    ) -> InboxScan:
        """Stage settled files as one batch; move refused ones to ``.rejected`` with a reason.

        When every file is refused, nothing is staged: they are all moved aside.
        """
        paths = self.settled_files()
        if not paths:
            return InboxScan()
        items, refused = read_paths(paths, max_bytes=max_bytes, root=self.root)
        manifest: BatchManifest | None = None
        try:
            manifest = storage.stage(
                items,
                max_bytes=max_bytes,
                ontology_hash=ontology_hash,
                extractor=extractor,
                refused=refused,
                source="inbox",
            )
            rejections = list(manifest.rejections)
        except NothingAccepted as nothing:
            rejections = list(nothing.rejections)
        by_name: dict[str, list[Path]] = {}
        for path in paths:
            by_name.setdefault(self.name_of(path), []).append(path)
        for rejection in rejections:
            # A clash refuses the later file of a name: the last one listed.
            same = by_name.get(rejection.name, [])
            self._reject(same.pop() if same else None, rejection)
        kept = [path for same in by_name.values() for path in same if path.exists()]
        return InboxScan(
            manifest=manifest,
            files=[path.relative_to(self.root).as_posix() for path in kept],
            rejected=rejections,
        )

    def name_of(self, path: Path) -> str:
        """The document name of an inbox file: its path relative to the inbox, made safe."""
        return document_name(path.relative_to(self.root).as_posix())

    def archive(self, batch_id: str, names: list[str]) -> None:
        """Move a submitted batch's files out of the way (after its run was requested)."""
        target = self.root / SUBMITTED / batch_id
        for name in names:
            source = self.root / name
            if source.is_file():
                (target / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.move(str(source), target / name)
                self._prune(source.parent)

    def _reject(self, path: Path | None, rejection: DocumentRejection) -> None:
        if path is None or not path.exists():
            return
        relative = path.relative_to(self.root)
        target = self.root / REJECTED / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(path), target)
        reason = f"{rejection.code}: {rejection.reason}\n"
        target.with_name(f"{target.name}.reason.txt").write_text(reason, encoding="utf-8")
        self._prune(path.parent)

    def _prune(self, folder: Path) -> None:
        """Remove folders the move left empty, up to (never including) the inbox itself."""
        while folder != self.root and folder.is_relative_to(self.root):
            try:
                folder.rmdir()
            except OSError:
                return
            folder = folder.parent

    def _visible_files(self, folder: Path) -> Iterator[Path]:
        try:
            entries = sorted(folder.iterdir())
        except OSError:
            return
        for path in entries:
            if path.name.startswith(".") or path.name.endswith(_PARTIAL_SUFFIXES):
                continue
            if path.is_symlink():
                continue
            if path.is_dir():
                yield from self._visible_files(path)
            elif path.is_file():
                yield path
