"""The ``knowledge resolve`` and ``knowledge eval resolution`` commands (handlers and options)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from knowledge_assets.pipeline.resolution.ablation import Rule
from knowledge_assets.settings import Settings

__all__ = ["InputError", "add_eval_resolution", "add_resolve", "read_records"]


class InputError(Exception):
    """A bad input file or folder; the message names it and is printed without a traceback.

    Caught here rather than by ``cli.UserFacingError`` so that this module does not import the
    command module (which imports it), whichever way the command is started.
    """


REQUIRED = ("doc_id", "start", "end", "text", "type")

Handler = Callable[[argparse.Namespace], int]


def add_resolve(commands: Any) -> None:
    """Register ``knowledge resolve`` on the top-level subcommands."""
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
    resolve.set_defaults(handler=_reporting_input_errors(_resolve))


def add_eval_resolution(kinds: Any) -> None:
    """Register ``knowledge eval resolution`` on the ``eval`` subcommands."""
    evaluate = kinds.add_parser("resolution", help="entity resolution scores and baselines")
    evaluate.add_argument("--gold", type=Path, required=True, help="corpus in ecbplus-dev format")
    evaluate.add_argument(
        "--no-end-to-end", action="store_true", help="score the resolver on gold mentions only"
    )
    evaluate.add_argument(
        "--one-batch",
        action="store_true",
        help="resolve all documents as one batch (as `knowledge resolve` does), not one per topic",
    )
    evaluate.add_argument(
        "--folds",
        type=int,
        default=0,
        metavar="K",
        help="also score leave-topics-out: tune on K-1 folds of topics, score the one left out",
    )
    evaluate.add_argument(
        "--errors",
        type=int,
        default=0,
        metavar="N",
        help="also report the points lost by type and the N heaviest wrong and missed merges",
    )
    evaluate.add_argument(
        "--without",
        action="append",
        default=[],
        choices=[str(rule) for rule in Rule],
        metavar="RULE",
        help="turn a resolution rule off to measure what it buys (repeatable): "
        + ", ".join(str(rule) for rule in Rule),
    )
    evaluate.add_argument("--json", action="store_true")
    evaluate.set_defaults(handler=_reporting_input_errors(_eval_resolution))


def read_records(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a JSON-lines file, each checked for the mention fields."""
    if not path.is_file():
        raise InputError(f"no such file: {path}")
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
        raise InputError(f"{path}:{number}: not JSON ({exc.msg})") from exc
    missing = [k for k in REQUIRED if not isinstance(row, dict) or k not in row]
    if missing:
        raise InputError(f"{path}:{number}: missing {', '.join(missing)}")
    if not (isinstance(row["start"], int) and isinstance(row["end"], int)):
        raise InputError(f"{path}:{number}: start and end must be integers")
    return row


def _batches(rows: list[dict[str, Any]], field: str | None) -> list[list[int]]:
    """Row indices per batch, batches in order of first appearance."""
    groups: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        groups.setdefault(str(row.get(field, "")) if field else "", []).append(i)
    return list(groups.values())


def _reporting_input_errors(handler: Callable[[argparse.Namespace], int]) -> Handler:
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except InputError as exc:
            print(f"knowledge: error: {exc}", file=sys.stderr)
            return 2

    return run


def _resolve(args: argparse.Namespace) -> int:
    from knowledge_assets.db.scratch import scratch_engine
    from knowledge_assets.pipeline.mention_records import MentionRecord, resolve_records
    from knowledge_assets.pipeline.ontology import load_ontology

    rows = read_records(args.mentions)
    records = [
        MentionRecord(str(r["doc_id"]), r["start"], r["end"], str(r["text"]), str(r["type"]))
        for r in rows
    ]
    settings = Settings()
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


def _eval_resolution(args: argparse.Namespace) -> int:
    from knowledge_assets.evaluation.folds import evaluate_folds
    from knowledge_assets.evaluation.resolution import Run, evaluate_resolution
    from knowledge_assets.pipeline.ontology import load_ontology

    if not (args.gold / "gold" / "mentions.jsonl").is_file():
        raise InputError(f"{args.gold} has no gold/mentions.jsonl")
    settings, without = Settings(), frozenset(Rule(name) for name in args.without)
    report = evaluate_resolution(
        args.gold,
        settings,
        end_to_end=not args.no_end_to_end,
        one_batch=args.one_batch,
        without=without,
        errors=args.errors,
    )
    if args.folds:
        ontology = load_ontology(settings.ontology)
        run = Run(ontology, settings, settings.resolution_threshold, without, args.one_batch)
        try:
            report.update(evaluate_folds(args.gold, run, args.folds))
        except ValueError as exc:
            raise InputError(str(exc)) from exc
    if args.json:
        print(json.dumps(report, sort_keys=True))
    else:
        _print_report(report)
    return 0


def _print_report(report: dict[str, Any]) -> None:
    print(f"{'':<28} {'B3 P':>6} {'B3 R':>6} {'B3 F1':>6}   {'pw P':>6} {'pw R':>6} {'pw F1':>6}")
    for key, value in report.items():
        if isinstance(value, dict) and "b_cubed" in value:
            _print_scores(key, value)
    for n, fold in enumerate(report.get("folds", ()), start=1):
        topics = ",".join(fold["topics"])
        print(f"fold {n}: topics {topics}, threshold {fold['threshold']} (tuned on the others)")
        _print_scores(f"  fold {n} resolver", fold["resolver"])
        _print_scores(f"  fold {n} baseline_head", fold["baseline_head"])
    for key, value in report.items():
        if not isinstance(value, dict | list):
            print(f"{key:<28} {value}")
    if "resolver_alone_errors" in report:
        _print_errors(report["resolver_alone_errors"])


def _print_errors(errors: dict[str, Any]) -> None:
    print(
        f"B3 precision lost {errors['precision_lost']:.4f} "
        f"(across topics {errors['precision_lost_across_topics']:.4f}), "
        f"recall lost {errors['recall_lost']:.4f}"
    )
    for label, lost in errors["by_type"].items():
        print(
            f"  {label:<8} precision lost {lost['precision']:.4f}  recall lost {lost['recall']:.4f}"
        )
    for title, key in (("wrong merges", "wrong_merges"), ("missed merges", "missed_merges")):
        print(f"heaviest {title} (B3 points lost; the parts, gold chains or clusters):")
        for error in errors[key]:
            where = f"{'/'.join(error['types'])} topic {','.join(error['topics'])}"
            print(f"  {error['lost']:.4f} {where}: " + " | ".join(error["parts"]))


def _print_scores(name: str, value: dict[str, Any]) -> None:
    b, p = value["b_cubed"], value["pairwise"]
    cells = [b["precision"], b["recall"], b["f1"], p["precision"], p["recall"], p["f1"]]
    print(f"{name:<28} " + " ".join(f"{c:>6.3f}" for c in cells[:3]), end="   ")
    print(" ".join(f"{c:>6.3f}" for c in cells[3:]))
