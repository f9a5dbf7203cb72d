"""`make bench [ONLY=name]`: run the benchmarks, print a table, write bench/results.json."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import (
    lifecycle,
    llm,
    memory,
    overhead,
    recovery,
    resolution,
    scaling,
    services,
    sse,
    start,
    throughput,
)
from bench.common import BenchmarkSkipped

# Order matters: ``memory`` reuses the trials ``overhead`` ran before it in the same command.
BENCHMARKS: dict[str, Callable[[], dict[str, Any]]] = {
    "throughput": throughput.run,
    "services": services.run,
    "start": start.run,
    "llm": llm.run,
    "scaling": scaling.run,
    "overhead": overhead.run,
    "memory": memory.run,
    "recovery": recovery.run,
    "resolution": resolution.run,
    "sse": sse.run,
    "lifecycle": lifecycle.run,
}
RESULTS = Path(__file__).with_name("results.json")


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench")
    parser.add_argument("--only", type=_names, help="one benchmark, or several: llm,memory")
    args = parser.parse_args()
    chosen = args.only or list(BENCHMARKS)
    results: dict[str, Any] = {
        "machine": f"{platform.machine()}, {_cores()} cores, python {sys.version.split()[0]}",
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "command": "make bench" + (f" ONLY={','.join(args.only)}" if args.only else ""),
        "benchmarks": {},
    }
    began = time.monotonic()
    results["load_avg_1m_before"] = round(os.getloadavg()[0], 2)
    for name in chosen:
        started = time.monotonic()
        environment = dict(os.environ)  # a benchmark's databases must not leak into the next
        try:
            figures = BENCHMARKS[name]()
        except BenchmarkSkipped as exc:
            figures = {"benchmark": name, "skipped": str(exc)}
        finally:
            os.environ.clear()
            os.environ.update(environment)
        figures["elapsed_s"] = round(time.monotonic() - started, 1)
        results["benchmarks"][name] = figures
        _print_table(figures)
        print(json.dumps(figures, sort_keys=True), flush=True)
    results["elapsed_s"] = round(time.monotonic() - began, 1)
    results["load_avg_1m_after"] = round(os.getloadavg()[0], 2)
    _print_summary(results)
    RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return 0


def _names(value: str) -> list[str]:
    """``ONLY=llm,memory`` runs both, in the runner's order (``memory`` after ``overhead``)."""
    names = set(value.split(","))
    unknown = sorted(names - set(BENCHMARKS))
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown: {', '.join(unknown)}; one of {sorted(BENCHMARKS)}"
        )
    return [name for name in BENCHMARKS if name in names]


def _cores() -> int:
    return len(os.sched_getaffinity(0))


def _print_summary(results: dict[str, Any]) -> None:
    """One line per benchmark: its target and whether it was met (or why it was skipped)."""
    print(f"\nsummary ({results['machine']}, {results['elapsed_s']} s):")
    for name, figures in results["benchmarks"].items():
        if "skipped" in figures:
            print(f"  {name:<11} skipped: {figures['skipped']}")
            continue
        targets = {k: v for k, v in figures.items() if k.startswith("target")}
        print(f"  {name:<11} met={figures.get('met')}  {targets}")


def _print_table(figures: dict[str, Any]) -> None:
    width = max(len(k) for k in figures)
    for key, value in figures.items():
        print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
    raise SystemExit(main())
