"""The vendored browser library is exactly the file its README names, with its licence."""

from __future__ import annotations

import hashlib

from tests.conftest import PROJECT_ROOT

CYTOSCAPE = PROJECT_ROOT / "api" / "static" / "vendor" / "cytoscape"
SHA256 = "71fa9ebec21a7ca2c40cff6aacc30d1f6464e363662ad4b2c197e1adc770cd94"


def test_cytoscape_is_the_pinned_file_with_its_licence() -> None:
    data = (CYTOSCAPE / "cytoscape.min.js").read_bytes()
    assert hashlib.sha256(data).hexdigest() == SHA256
    readme = (CYTOSCAPE / "README.md").read_text(encoding="utf-8")
    assert SHA256 in readme and "3.35.0" in readme
    licence = (CYTOSCAPE / "LICENSE").read_text(encoding="utf-8")
    assert "The Cytoscape Consortium" in licence and "Permission is hereby granted" in licence
    assert data.startswith(b"/**\n * Copyright (c) 2016-2026, The Cytoscape Consortium.")
