"""``knowledge up --demo`` drops only the demo files never submitted, and says what it did."""

from __future__ import annotations

import os
from pathlib import Path

from knowledge_assets.cli.up import demo_banner
from knowledge_assets.demo import corpus_files
from knowledge_assets.pipeline.batches import BatchStorage
from knowledge_assets.pipeline.inbox import Inbox
from knowledge_assets.pipeline.models import ExtractorInfo
from knowledge_assets.platform.supervisor import Platform
from knowledge_assets.settings import Settings

NAMES = [p.name for p in corpus_files()]


def test_a_restart_drops_nothing_the_inbox_already_has_or_staged(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    first = Platform(settings, demo=True).drop_demo()
    assert (first.dropped, first.kept) == (NAMES, [])
    assert demo_banner(first).startswith(f"demo corpus: {len(NAMES)} files dropped into the inbox")

    waiting = Platform(settings, demo=True).drop_demo()
    assert (waiting.dropped, waiting.kept) == ([], NAMES)

    inbox, storage = Inbox(settings.inbox_dir, settle_s=0), BatchStorage(settings.storage_dir)
    extractor = ExtractorInfo(name="offline", version="1", config_hash="c")
    scan = inbox.scan(storage, max_bytes=10**6, ontology_hash="o", extractor=extractor)
    assert scan.manifest is not None
    inbox.archive(scan.manifest.batch_id, scan.files)
    assert not [p for p in settings.inbox_dir.iterdir() if not p.name.startswith(".")]

    restarted = Platform(settings, demo=True).drop_demo()
    assert (restarted.dropped, restarted.kept) == ([], NAMES)
    assert demo_banner(restarted) == (
        f"demo corpus: all {len(NAMES)} files submitted before; nothing dropped"
    )
    assert not [p for p in settings.inbox_dir.iterdir() if not p.name.startswith(".")]


def test_a_demo_file_changed_in_the_inbox_is_written_again(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    Platform(settings, demo=True).drop_demo()
    edited = settings.inbox_dir / NAMES[0]
    edited.write_text("An edited demo file.", encoding="utf-8")
    os.utime(edited, (0, 0))
    drop = Platform(settings, demo=True).drop_demo()
    assert (drop.dropped, drop.kept) == ([NAMES[0]], NAMES[1:])
    assert demo_banner(drop) == (
        f"demo corpus: 1 file dropped into the inbox; {len(NAMES) - 1} files submitted before "
        "left alone"
    )
    assert edited.read_bytes() == corpus_files()[0].read_bytes()
