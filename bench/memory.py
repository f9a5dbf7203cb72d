"""Memory: peak RSS of a run worker on 200 and on all 772 documents, beside the direct pipeline.

The direct pipeline holds the batch's own data and nothing else, so its growth from 200 to 772
documents is the yardstick: the run worker may grow as much, not more. When ``overhead`` ran
earlier in the same command, its trials are reused instead of running the batches again.
"""

from __future__ import annotations

import os
from typing import Any

from bench.common import corpus_paths
from bench.launched import RECORDED, database_server, run_direct, run_launched
from knowledge_assets.pipeline.models import DocumentInput

SIZES = (200, 772)
# Slack for allocator noise: 10% of the direct pipeline's growth plus 10 MiB.
SLACK = 1.10
SLACK_MB = 10.0


def run() -> dict[str, Any]:
    """Peak RSS of both paths at each size, and how much each grows between the sizes."""
    small, large = (_measured(size) for size in SIZES)
    n_small, n_large = small["documents"], large["documents"]
    direct_growth = large["direct_mb"] - small["direct_mb"]
    worker_growth = large["worker_mb"] - small["worker_mb"]
    allowed = SLACK * max(direct_growth, 0.0) + SLACK_MB
    return {
        "benchmark": "memory",
        "run_worker_peak_rss_mb": {n_small: small["worker_mb"], n_large: large["worker_mb"]},
        "direct_peak_rss_mb": {n_small: small["direct_mb"], n_large: large["direct_mb"]},
        "run_worker_growth_mb": round(worker_growth, 1),
        "direct_growth_mb": round(direct_growth, 1),
        "dagster_extra_mb": {
            n_small: round(small["worker_mb"] - small["direct_mb"], 1),
            n_large: round(large["worker_mb"] - large["direct_mb"], 1),
        },
        "target": f"run worker growth <= {SLACK} x direct growth + {SLACK_MB:.0f} MiB",
        "met": worker_growth <= allowed,
        "reused_overhead_trials": small["reused"] and large["reused"],
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def _measured(size: int) -> dict[str, Any]:
    paths = corpus_paths(size)
    recorded = RECORDED.get(len(paths))
    if recorded:
        direct = max(d.peak_rss_mb for d, _ in recorded)
        worker = max(w.peak_rss_mb for _, w in recorded)
        return {"documents": len(paths), "direct_mb": direct, "worker_mb": worker, "reused": True}
    items = [DocumentInput(name=p.name, data=p.read_bytes()) for p in paths]
    with database_server() as admin:
        direct_run = run_direct(admin, paths)
        launched = run_launched(admin, items)
    return {
        "documents": len(paths),
        "direct_mb": direct_run.peak_rss_mb,
        "worker_mb": launched.peak_rss_mb,
        "reused": False,
    }
