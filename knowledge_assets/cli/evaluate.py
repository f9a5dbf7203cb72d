"""``knowledge eval mentions|resolution``: quality measured against a gold corpus."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from knowledge_assets.errors import UserFacingError
from knowledge_assets.settings import Settings

__all__ = ["register"]


def register(commands: Any) -> None:
    """Add ``eval`` with its ``mentions`` and ``resolution`` measurements."""
    evaluate = commands.add_parser("eval", help="measure quality on a gold corpus")
    kinds = evaluate.add_subparsers(required=True, metavar="WHAT")

    recall = kinds.add_parser("mentions", help="mention recall of the offline extractor")
    recall.add_argument("--gold", type=Path, required=True, help="corpus in ecbplus-dev format")
    recall.add_argument("--json", action="store_true")
    recall.set_defaults(handler=mentions_command)

    resolution = kinds.add_parser("resolution", help="entity resolution scores and baselines")
    resolution.add_argument("--gold", type=Path, required=True, help="corpus in ecbplus-dev format")
    resolution.add_argument(
        "--no-end-to-end", action="store_true", help="score the resolver on gold mentions only"
    )
    resolution.add_argument("--json", action="store_true")
    resolution.set_defaults(handler=resolution_command)


def _require_gold(folder: Path) -> None:
    if not (folder / "gold" / "mentions.jsonl").is_file():
        raise UserFacingError(f"{folder} has no gold/mentions.jsonl")


def mentions_command(args: argparse.Namespace, settings: Settings) -> int:
    """Mention recall of the offline pipeline against the gold mentions."""
    from knowledge_assets.evaluation.mentions import evaluate_mention_recall

    _require_gold(args.gold)
    report = evaluate_mention_recall(args.gold, settings)
    if args.json:
        print(json.dumps(report, sort_keys=True))
    else:
        for key, value in report.items():
            print(f"{key:<28} {value}")
    return 0


def resolution_command(args: argparse.Namespace, settings: Settings) -> int:
    """B-cubed and pairwise scores of the resolver and its baselines."""
    from knowledge_assets.evaluation.resolution import evaluate_resolution

    _require_gold(args.gold)
    report = evaluate_resolution(args.gold, settings, end_to_end=not args.no_end_to_end)
    if args.json:
        print(json.dumps(report, sort_keys=True))
    else:
        _print_report(report)
    return 0


def _print_report(report: dict[str, Any]) -> None:
    print(f"{'':<28} {'B3 P':>6} {'B3 R':>6} {'B3 F1':>6}   {'pw P':>6} {'pw R':>6} {'pw F1':>6}")
    for key, value in report.items():
        if isinstance(value, dict):
            b, p = value["b_cubed"], value["pairwise"]
            cells = [b["precision"], b["recall"], b["f1"], p["precision"], p["recall"], p["f1"]]
            print(f"{key:<28} " + " ".join(f"{c:>6.3f}" for c in cells[:3]), end="   ")
            print(" ".join(f"{c:>6.3f}" for c in cells[3:]))
    for key, value in report.items():
        if not isinstance(value, dict):
            print(f"{key:<28} {value}")
