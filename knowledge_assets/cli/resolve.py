"""``knowledge resolve``: the resolution cascade on bare mention lines, in a scratch database."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from knowledge_assets.errors import UserFacingError
from knowledge_assets.settings import Settings

__all__ = ["read_records", "register"]

REQUIRED = ("doc_id", "start", "end", "text", "type")


def register(commands: Any) -> None:
    """Add ``resolve``."""
    resolve = commands.add_parser(
        "resolve", help="resolve mentions (JSON lines) into entities, in a fresh store"
    )
    resolve.add_argument("mentions", type=Path, metavar="MENTIONS.jsonl")
    resolve.add_argument(
        "--batch-field",
        metavar="FIELD",
        help="one batch per value of this field, merged in order of appearance (default: one)",
    )
    resolve.add_argument("--output", "-o", type=Path, help="file for the lines (default: stdout)")
    resolve.add_argument("--json", action="store_true", help="print one JSON object instead")
    resolve.set_defaults(handler=resolve_command)


def read_records(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a JSON-lines file, each checked for the mention fields."""
    if not path.is_file():
        raise UserFacingError(f"no such file: {path}")
    rows = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if line.strip():
                rows.append(_checked(line, number, path))
    return rows


def _checked(line: str, number: int, path: Path) -> dict[str, Any]:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise UserFacingError(f"{path}:{number}: not JSON ({exc.msg})") from exc
    missing = [k for k in REQUIRED if not isinstance(row, dict) or k not in row]
    if missing:
        raise UserFacingError(f"{path}:{number}: missing {', '.join(missing)}")
    if not (isinstance(row["start"], int) and isinstance(row["end"], int)):
        raise UserFacingError(f"{path}:{number}: start and end must be integers")
    return row


def _batches(rows: list[dict[str, Any]], field: str | None) -> list[list[int]]:
    """Row indices per batch, batches in order of first appearance."""
    groups: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        groups.setdefault(str(row.get(field, "")) if field else "", []).append(i)
    return list(groups.values())


def resolve_command(args: argparse.Namespace, settings: Settings) -> int:
    """Resolve the lines (in-batch, then the registry) and write them with ``entity_id``."""
    from knowledge_assets.db.scratch import scratch_engine
    from knowledge_assets.pipeline.mention_records import MentionRecord, resolve_records
    from knowledge_assets.pipeline.ontology import load_ontology

    rows = read_records(args.mentions)
    records = [
        MentionRecord(str(r["doc_id"]), r["start"], r["end"], str(r["text"]), str(r["type"]))
        for r in rows
    ]
    batches = [[records[i] for i in batch] for batch in _batches(rows, args.batch_field)]
    with scratch_engine(settings, prefix="ka_resolve") as engine:
        canonical = resolve_records(
            engine, load_ontology(settings.ontology), batches,
            threshold=settings.resolution_threshold,
        )  # fmt: skip
    out = [{**row, "entity_id": canonical[r.id]} for row, r in zip(rows, records, strict=True)]
    if args.json:
        summary = {"mentions": out, "entities": len({o["entity_id"] for o in out})}
        print(json.dumps(summary | {"batches": len(batches)}, sort_keys=True))
    else:
        _write_lines(out, args.output)
    return 0


def _write_lines(rows: Iterable[dict[str, Any]], output: Path | None) -> None:
    lines = (json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    if output:
        with output.open("w", encoding="utf-8") as out:
            out.writelines(lines)
    else:
        sys.stdout.writelines(lines)
        sys.stdout.flush()
