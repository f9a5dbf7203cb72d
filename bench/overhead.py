"""Orchestration overhead: a launched Dagster run vs the direct pipeline, same batch, cold cache."""

from __future__ import annotations

import os
import statistics
from typing import Any

from bench.common import corpus_paths
from bench.launched import (
    RECORDED,
    DirectRun,
    LaunchedRun,
    database_server,
    run_direct,
    run_launched,
)
from knowledge_assets.pipeline.models import DocumentInput

TARGETS = {200: 1.10, 772: 1.05}
PAIRS = 3


def run(sizes: tuple[int, ...] | None = None, pairs: int = PAIRS) -> dict[str, Any]:
    """Alternate direct and launched runs of each batch size; report median per-pair ratios.

    ``BENCH_OVERHEAD_SIZES=200`` runs one size only (the 772-document pairs take ~10 minutes).
    """
    sizes = sizes or _sizes()
    figures: dict[str, Any] = {"benchmark": "overhead", "pairs": pairs, "sizes": list(sizes)}
    with database_server() as admin:
        for size in sizes:
            figures.update(_size(admin, size, pairs))
    figures["met"] = all(figures[f"ratio_{n}"] <= TARGETS[n] for n in sizes)
    return figures


def _sizes() -> tuple[int, ...]:
    chosen = os.environ.get("BENCH_OVERHEAD_SIZES", "")
    return tuple(int(n) for n in chosen.split(",") if n.strip()) or tuple(TARGETS)


def _size(admin: str, size: int, pairs: int) -> dict[str, Any]:
    paths = corpus_paths(size)
    items = [DocumentInput(name=p.name, data=p.read_bytes()) for p in paths]
    direct: list[DirectRun] = []
    launched: list[LaunchedRun] = []
    loads: list[float] = []
    for pair in range(pairs):
        direct.append(run_direct(admin, paths))
        # ``memory`` needs the batch's data measured once per size, not after every trial.
        launched.append(run_launched(admin, items, measure_data=pair == pairs - 1))
        loads.append(os.getloadavg()[0])
        print(f"overhead {size}: direct {direct[-1].seconds:.2f} s, launched "
              f"{launched[-1].seconds:.2f} s, load {loads[-1]:.2f}", flush=True)  # fmt: skip
    bad = [r.state for r in launched if r.state != "complete"]
    if bad:
        raise RuntimeError(f"launched runs did not complete: {bad}")
    n = len(paths)
    RECORDED[n] = list(zip(direct, launched, strict=True))
    ratios = [w.seconds / d.seconds for d, w in zip(direct, launched, strict=True)]
    warm = [w.seconds / d.run_seconds for d, w in zip(direct, launched, strict=True)]
    return {
        f"documents_{n}": n,
        f"direct_s_{n}": [round(d.seconds, 2) for d in direct],
        f"direct_run_paths_s_{n}": [round(d.run_seconds, 2) for d in direct],
        f"launched_s_{n}": [round(w.seconds, 2) for w in launched],
        f"ratio_{n}": round(statistics.median(ratios), 3),
        f"target_{n}": f"<= {TARGETS.get(n, 1.10)}",
        f"ratio_vs_warm_direct_{n}": round(statistics.median(warm), 3),
        f"launched_phases_s_{n}": _median_phases(launched),
        f"direct_start_s_{n}": round(
            statistics.median(d.seconds - d.run_seconds for d in direct), 2
        ),
        f"load_avg_1m_{n}": [round(x, 2) for x in loads],
    }


def _median_phases(launched: list[LaunchedRun]) -> dict[str, float]:
    """Median seconds per phase: submit, queue, worker start, steps."""
    names = [k for k in launched[0].phases if k != "total"]
    return {k: round(statistics.median(r.phases[k] for r in launched), 2) for k in names}
