"""``knowledge eval mentions|resolution``: quality measured against a gold corpus."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from knowledge_assets.errors import UserFacingError
from knowledge_assets.pipeline.resolution.ablation import Rule
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
    resolution.add_argument(
        "--one-batch",
        action="store_true",
        help="resolve all documents as one batch (as `knowledge resolve` does), not one per topic",
    )
    resolution.add_argument(
        "--folds",
        type=int,
        default=0,
        metavar="K",
        help="also score leave-topics-out: tune on K-1 folds of topics, score the one left out",
    )
    resolution.add_argument(
        "--errors",
        type=int,
        default=0,
        metavar="N",
        help="also report the points lost by type and the N heaviest wrong and missed merges",
    )
    resolution.add_argument(
        "--without",
        action="append",
        default=[],
        choices=[str(rule) for rule in Rule],
        metavar="RULE",
        help="turn a resolution rule off to measure what it buys (repeatable): "
        + ", ".join(str(rule) for rule in Rule),
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
    from knowledge_assets.evaluation.folds import evaluate_folds
    from knowledge_assets.evaluation.resolution import Run, evaluate_resolution
    from knowledge_assets.pipeline.ontology import load_ontology

    _require_gold(args.gold)
    without = frozenset(Rule(name) for name in args.without)
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
            raise UserFacingError(str(exc)) from exc
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


def _print_scores(name: str, value: dict[str, Any]) -> None:
    b, p = value["b_cubed"], value["pairwise"]
    cells = [b["precision"], b["recall"], b["f1"], p["precision"], p["recall"], p["f1"]]
    print(f"{name:<28} " + " ".join(f"{c:>6.3f}" for c in cells[:3]), end="   ")
    print(" ".join(f"{c:>6.3f}" for c in cells[3:]))


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
