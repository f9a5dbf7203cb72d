"""`make bench [ONLY=name]`: run the benchmarks, print a table, write bench/results.json."""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import llm, memory, overhead, throughput
from bench.common import BenchmarkSkipped

# Order matters: ``memory`` reuses the trials ``overhead`` ran before it in the same command.
BENCHMARKS: dict[str, Callable[[], dict[str, Any]]] = {
    "throughput": throughput.run,
    "llm": llm.run,
    "overhead": overhead.run,
    "memory": memory.run,
}
RESULTS = Path(__file__).with_name("results.json")


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench")
    parser.add_argument("--only", choices=sorted(BENCHMARKS))
    args = parser.parse_args()
    chosen = [args.only] if args.only else list(BENCHMARKS)
    results: dict[str, Any] = {
        "machine": f"{platform.machine()}, {_cores()} cores, python {sys.version.split()[0]}",
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "command": "make bench" + (f" ONLY={args.only}" if args.only else ""),
        "benchmarks": {},
    }
    for name in chosen:
        try:
            figures = BENCHMARKS[name]()
        except BenchmarkSkipped as exc:
            figures = {"benchmark": name, "skipped": str(exc)}
        results["benchmarks"][name] = figures
        _print_table(figures)
        print(json.dumps(figures, sort_keys=True))
    RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return 0


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0))


def _print_table(figures: dict[str, Any]) -> None:
    width = max(len(k) for k in figures)
    for key, value in figures.items():
        print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
    raise SystemExit(main())
