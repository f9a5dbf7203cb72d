"""The ``knowledge`` command line."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from knowledge_assets import cli_batches, follow
from knowledge_assets.errors import UserFacingError
from knowledge_assets.settings import Settings

__all__ = ["UserFacingError", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``knowledge`` console script."""
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        return 130
    except UserFacingError as exc:
        print(f"knowledge: error: {exc}", file=sys.stderr)
        return 2
    finally:
        from knowledge_assets.db.engine import stop_embedded

        stop_embedded()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="knowledge", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    extract = commands.add_parser("extract", help="run the direct pipeline on files or folders")
    extract.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    extract.add_argument("--ontology", type=Path, help="Turtle ontology (default: built-in)")
    extract.add_argument("--extractor", choices=["offline", "llm"])
    extract.add_argument("--json", action="store_true", help="print one JSON object")
    extract.set_defaults(handler=_extract)

    export = commands.add_parser("export", help="write the graph or its mentions")
    export.add_argument("--format", choices=["ttl", "jsonld", "mentions"], default="ttl")
    export.add_argument("--output", "-o", type=Path, help="file to write (default: stdout)")
    export.add_argument("--ontology", type=Path)
    export.set_defaults(handler=_export)

    up = commands.add_parser("up", help="run the platform (database, Dagster UI and daemon)")
    up.add_argument("--demo", action="store_true", help="drop the demo corpus into the inbox")
    up.set_defaults(handler=_up)

    cli_batches.register(commands)
    follow.register(commands)

    demo = commands.add_parser("demo", help="extract the shipped demo corpus")
    demo.set_defaults(handler=_demo)

    evaluate = commands.add_parser("eval", help="measure quality on a gold corpus")
    kinds = evaluate.add_subparsers(required=True, metavar="WHAT")
    recall = kinds.add_parser("mentions", help="mention recall of the offline extractor")
    recall.add_argument("--gold", type=Path, required=True, help="corpus in ecbplus-dev format")
    recall.add_argument("--json", action="store_true")
    recall.set_defaults(handler=_eval_mentions)

    from knowledge_assets.resolve_cli import add_eval_resolution, add_resolve

    add_resolve(commands)
    add_eval_resolution(kinds)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    if getattr(args, "ontology", None):
        overrides["ontology"] = args.ontology
    if getattr(args, "extractor", None):
        overrides["extractor"] = args.extractor
    return Settings(**overrides)


def _ontology(settings: Settings) -> Any:
    from knowledge_assets.pipeline.ontology import OntologyError, load_ontology

    try:
        return load_ontology(settings.ontology)
    except OntologyError as exc:
        raise UserFacingError(f"ontology: {exc}") from exc


def _pipeline(settings: Settings) -> Any:
    from knowledge_assets.pipeline.ontology import OntologyError
    from knowledge_assets.pipeline.pipeline import ExtractionPipeline

    ontology = _ontology(settings)
    try:
        return ExtractionPipeline(settings, ontology=ontology)
    except OntologyError as exc:  # a broken shapes file (ShapesError) is an OntologyError too
        raise UserFacingError(f"shapes: {exc}") from exc


def _extract(args: argparse.Namespace) -> int:
    missing = [str(p) for p in args.paths if not p.exists()]
    if missing:
        raise UserFacingError(f"no such file or folder: {', '.join(missing)}")
    pipeline = _pipeline(_settings(args))
    try:
        result = pipeline.run_paths(args.paths)
    finally:
        pipeline.close()
    if args.json:
        print(json.dumps(result.to_json(), sort_keys=True))
    else:
        _print_summary(result)
    return 0 if result.documents or not result.rejected else 1


def _print_summary(result: Any) -> None:
    print(f"batch {result.batch_id}")
    for key in ("documents", "rejected", "chunks", "mentions", "entities", "relations"):
        print(f"  {key:<16} {getattr(result, key)}")
    print(f"  {'quarantined':<16} {result.quarantined}")
    print(f"  {'extractor calls':<16} {result.extractor_calls} (cache hits {result.cache_hits})")
    print(f"  {'rows inserted':<16} {result.inserted_rows}")
    for rejection in result.rejections:
        print(f"  refused {rejection['name']}: {rejection['reason']}")


def _export(args: argparse.Namespace) -> int:
    from knowledge_assets.db.engine import get_engine
    from knowledge_assets.pipeline.export import export

    settings = _settings(args)
    pieces = export(get_engine(settings), _ontology(settings), args.format)
    if args.output:
        with args.output.open("w", encoding="utf-8") as out:
            out.writelines(pieces)
    else:
        sys.stdout.writelines(pieces)
    return 0


def _up(args: argparse.Namespace) -> int:
    from knowledge_assets.platform import Platform

    settings = Settings()
    platform = Platform(settings, demo=args.demo)
    platform.start()
    print(f"Dagster UI:  http://{settings.ui_host}:{settings.ui_port}", flush=True)
    _print_api(settings, platform.api_token)
    print(f"inbox:       {settings.inbox_dir}  (drop .txt/.md files here)", flush=True)
    print(f"state:       {settings.home}   logs: {settings.home / 'logs'}", flush=True)
    if args.demo:
        print("demo corpus dropped into the inbox; watch the assets fill in", flush=True)
    print("Ctrl-C stops everything", flush=True)
    return platform.wait()


def _print_api(settings: Settings, token: Any) -> None:
    if token is None:
        return
    print(f"API:         {settings.api_url}  (web page: {settings.api_url}/#token=...)", flush=True)
    if token.source == "environment":
        print("API token:   from KNOWLEDGE_API_TOKEN", flush=True)
    else:
        print(f"API token:   {token.value}  ({token.source}, kept in {settings.api_token_file})")


def _demo(args: argparse.Namespace) -> int:
    from knowledge_assets.demo import CORPUS_DIR

    settings = Settings()
    pipeline = _pipeline(settings)
    try:
        result = pipeline.run_paths([CORPUS_DIR])
    finally:
        pipeline.close()
    _print_summary(result)
    where = settings.database_url and "the database at KNOWLEDGE_DATABASE_URL"
    print(f"results are in {where or f'the embedded PostgreSQL under {settings.pgdata_dir}'}")
    print("see them with: knowledge export --format ttl   (or jsonld, mentions)")
    return 0


def _eval_mentions(args: argparse.Namespace) -> int:
    from knowledge_assets.evaluation.mentions import evaluate_mention_recall

    if not (args.gold / "gold" / "mentions.jsonl").is_file():
        raise UserFacingError(f"{args.gold} has no gold/mentions.jsonl")
    report = evaluate_mention_recall(args.gold, Settings())
    if args.json:
        print(json.dumps(report, sort_keys=True))
    else:
        for key, value in report.items():
            print(f"{key:<28} {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
