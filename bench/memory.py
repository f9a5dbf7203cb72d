"""Memory: does the run worker's peak grow with the batch beyond the batch's own data?

The yardstick is the batch's data itself. After each run, the batch's stored asset values are
loaded through the IO manager in a fresh process and measured with tracemalloc
(``launched.measure_batch_data``). A step holds at least its inputs together (each is loaded from
its own file, so they share nothing) and at least its output; the output is not added to the
inputs, because it may share objects with the inputs it was built from (the validated graph
reuses the resolved graph's entities). The batch's data is the largest of these per-step lower
bounds, so the yardstick errs on the strict side. Between 200 and 772 documents the run worker's
peak resident size may grow by at most ``FACTOR`` times as much as that data, plus ``SLACK_MB``.

Why ``FACTOR`` = 2: besides the values themselves, a step holds one transient working copy of the
same data at most — the JSON text the IO manager reads or writes, the RDF graph SHACL validates,
the rows ingest sends — each no larger than the values it comes from. Anything beyond that (a
second copy of a file, values of earlier steps kept alive, event buffers) is waste that grows with
the batch. ``SLACK_MB`` absorbs allocator granularity (arenas are not returned at once) and
Dagster's per-run records, which do not depend on the batch's size.

When ``overhead`` ran earlier in the same command its trials are reused; the direct pipeline's
peak is reported beside the worker's for reference.
"""

from __future__ import annotations

import os
from typing import Any

from bench.common import corpus_paths
from bench.launched import (
    RECORDED,
    STEP_DATA,
    DirectRun,
    LaunchedRun,
    database_server,
    run_direct,
    run_launched,
)
from knowledge_assets.pipeline.models import DocumentInput

SIZES = (200, 772)
FACTOR = 2.0
SLACK_MB = 10.0


def run() -> dict[str, Any]:
    """Peak RSS of the run worker and the batch's data at each size, and how much each grows."""
    small, large = (_measured(size) for size in SIZES)
    n_small, n_large = small["documents"], large["documents"]
    worker_growth = large["worker_mb"] - small["worker_mb"]
    data_growth = large["data_mb"] - small["data_mb"]
    allowed = FACTOR * max(data_growth, 0.0) + SLACK_MB
    return {
        "benchmark": "memory",
        "run_worker_peak_rss_mb": {n_small: small["worker_mb"], n_large: large["worker_mb"]},
        "batch_data_mb": {n_small: small["data_mb"], n_large: large["data_mb"]},
        "run_worker_growth_mb": round(worker_growth, 1),
        "batch_data_growth_mb": round(data_growth, 1),
        "allowed_growth_mb": round(allowed, 1),
        "run_worker_rss_by_step_mb": {n_small: small["by_step"], n_large: large["by_step"]},
        "asset_values_mb": {n_small: small["values"], n_large: large["values"]},
        "direct_peak_rss_mb": {n_small: small["direct_mb"], n_large: large["direct_mb"]},
        "target": f"run worker growth <= {FACTOR:g} x batch data growth + {SLACK_MB:.0f} MiB",
        "met": worker_growth <= allowed,
        "reused_overhead_trials": small["reused"] and large["reused"],
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def step_data_mb(values: dict[str, dict[str, float]]) -> dict[str, float]:
    """Per step, what it surely holds at once: its inputs together, or its output if larger."""
    held = {asset: figures["held_mb"] for asset, figures in values.items()}
    return {
        step: round(max(sum(held[a] for a in assets[:-1]), held[assets[-1]]), 1)
        for step, assets in STEP_DATA.items()
    }


def _measured(size: int) -> dict[str, Any]:
    paths = corpus_paths(size)
    recorded = RECORDED.get(len(paths))
    if recorded:
        direct = max(d.peak_rss_mb for d, _ in recorded)
        measured = [w for _, w in recorded if w.batch_data_mb]
        worker = max(recorded, key=lambda pair: pair[1].peak_rss_mb)[1]
        return _figures(len(paths), direct, worker, measured[-1].batch_data_mb, reused=True)
    items = [DocumentInput(name=p.name, data=p.read_bytes()) for p in paths]
    with database_server() as admin:
        direct_run: DirectRun = run_direct(admin, paths)
        launched: LaunchedRun = run_launched(admin, items)
    return _figures(
        len(paths), direct_run.peak_rss_mb, launched, launched.batch_data_mb, reused=False
    )


def _figures(
    documents: int,
    direct_mb: float,
    worker: LaunchedRun,
    values: dict[str, dict[str, float]],
    *,
    reused: bool,
) -> dict[str, Any]:
    return {
        "documents": documents,
        "direct_mb": direct_mb,
        "worker_mb": worker.peak_rss_mb,
        "by_step": worker.rss_by_step_mb,
        "data_mb": max(step_data_mb(values).values()),
        "values": {asset: figures["held_mb"] for asset, figures in values.items()},
        "reused": reused,
    }
