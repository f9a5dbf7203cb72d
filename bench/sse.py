"""Progress streaming (100 SSE subscribers, p95 write → delivery ≤ 200 ms): not built yet.

The benchmark needs the API's SSE endpoint (issue 5), which is not on this branch. It skips with
that reason instead of printing a figure; nothing here measures or estimates anything.
"""

from __future__ import annotations

from typing import Any

from bench.common import BenchmarkSkipped


def run() -> dict[str, Any]:
    """Always skips until the API's SSE endpoint lands."""
    raise BenchmarkSkipped(
        "needs the API's SSE progress endpoint (issue 5), not merged into this branch yet; "
        "target when built: 100 subscribers, p95 write->delivery <= 200 ms, 0 lost events"
    )
