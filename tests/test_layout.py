"""The direct pipeline is plain Python: importing and running it never imports Dagster."""

from __future__ import annotations

import subprocess
import sys


def test_pipeline_imports_no_dagster() -> None:
    code = (
        "import sys\n"
        "import knowledge_assets.pipeline.pipeline, knowledge_assets.pipeline.stages\n"
        "import knowledge_assets.pipeline.extractors.offline\n"
        "import knowledge_assets.pipeline.extractors.llm\n"
        "leaked = sorted(m for m in sys.modules if m.split('.')[0] == 'dagster')\n"
        "assert not leaked, leaked\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
