"""`python -m bench.report`: write bench/results.json into docs/benchmarks.md (never by hand)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results.json"
DOC = ROOT / "docs" / "benchmarks.md"
START, END = "<!-- figures:start -->", "<!-- figures:end -->"


def render(results: dict[str, Any]) -> str:
    """The figures section: machine, date, command, then one table per benchmark."""
    lines = [
        f"`{results['command']}` on {results['date']}, {results['machine']}; "
        f"whole run {results.get('elapsed_s', '?')} s, 1-minute load average "
        f"{results.get('load_avg_1m_before', '?')} before and "
        f"{results.get('load_avg_1m_after', '?')} after (the 2 cores were shared).",
        "",
    ]
    for name, figures in results["benchmarks"].items():
        lines += [f"### {name}", "", "| figure | value |", "|---|---|"]
        lines += [f"| {key} | {_cell(value)} |" for key, value in figures.items()]
        lines.append("")
    return "\n".join(lines)


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text.replace("|", "\\|")


def main() -> int:
    results = json.loads(RESULTS.read_text(encoding="utf-8"))
    text = DOC.read_text(encoding="utf-8")
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    DOC.write_text(f"{head}{START}\n{render(results)}\n{END}{tail}", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
