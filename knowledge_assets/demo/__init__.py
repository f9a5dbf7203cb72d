"""A small demo corpus written for this project (fictional news), shipped as package data."""

from __future__ import annotations

from pathlib import Path

CORPUS_DIR = Path(__file__).with_name("corpus")


def corpus_files() -> list[Path]:
    """The demo documents, sorted by name."""
    return sorted(CORPUS_DIR.glob("*.txt"))
