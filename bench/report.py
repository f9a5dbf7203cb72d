"""`python -m bench.report`: write bench/results.json into docs/benchmarks.md (never by hand).

A run of some benchmarks only (``make bench ONLY=llm,memory``) replaces their tables and keeps the
others, each kept table saying which earlier run it comes from.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results.json"
DOC = ROOT / "docs" / "benchmarks.md"
START, END = "<!-- figures:start -->", "<!-- figures:end -->"


def render(results: dict[str, Any], kept: dict[str, str] | None = None) -> str:
    """The figures section: machine, date, command, then one table per benchmark.

    ``kept`` holds earlier tables of benchmarks this run did not include (``ONLY=...``), each
    already saying which run it comes from; they stay, in name order with the new ones.
    """
    lines = [_provenance(results), ""]
    blocks = {name: _table(name, figures) for name, figures in results["benchmarks"].items()}
    blocks = {**(kept or {}), **blocks}
    for name in sorted(blocks):
        lines += [blocks[name].rstrip("\n"), ""]
    return "\n".join(lines)


def _provenance(results: dict[str, Any]) -> str:
    return (
        f"`{results['command']}` on {results['date']}, {results['machine']}; "
        f"whole run {results.get('elapsed_s', '?')} s, 1-minute load average "
        f"{results.get('load_avg_1m_before', '?')} before and "
        f"{results.get('load_avg_1m_after', '?')} after (the 2 cores were shared)."
    )


def _table(name: str, figures: dict[str, Any]) -> str:
    lines = [f"### {name}", "", "| figure | value |", "|---|---|"]
    lines += [f"| {key} | {_cell(value)} |" for key, value in figures.items()]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text.replace("|", "\\|")


def _earlier_blocks(section: str, ran: set[str]) -> dict[str, str]:
    """Tables of the current section for benchmarks not in this run, marked with their run."""
    header, *parts = section.split("\n### ")
    provenance = header.strip()
    kept = {}
    for part in parts:
        name, _, body = part.partition("\n")
        if name in ran:
            continue
        note = "" if "From the run " in body else f"\nFrom the run {provenance}\n"
        kept[name] = f"### {name}\n{note}{body}"
    return kept


def main() -> int:
    results = json.loads(RESULTS.read_text(encoding="utf-8"))
    text = DOC.read_text(encoding="utf-8")
    head, _, rest = text.partition(START)
    section, _, tail = rest.partition(END)
    kept = _earlier_blocks(section, set(results["benchmarks"]))
    DOC.write_text(f"{head}{START}\n{render(results, kept)}\n{END}{tail}", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
