"""``knowledge extract|export|demo``: the direct pipeline, no Dagster, on the database."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from knowledge_assets.errors import UserFacingError
from knowledge_assets.settings import Settings

__all__ = ["load_checked_ontology", "open_pipeline", "register"]


def register(commands: Any) -> None:
    """Add ``extract``, ``export`` and ``demo``."""
    extract = commands.add_parser("extract", help="run the direct pipeline on files or folders")
    extract.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    extract.add_argument("--ontology", type=Path, help="Turtle ontology (default: built-in)")
    extract.add_argument("--extractor", choices=["offline", "llm"])
    extract.add_argument("--json", action="store_true", help="print one JSON object")
    extract.set_defaults(handler=extract_command)

    export = commands.add_parser("export", help="write the graph or its mentions")
    export.add_argument("--format", choices=["ttl", "jsonld", "mentions"], default="ttl")
    export.add_argument("--output", "-o", type=Path, help="file to write (default: stdout)")
    export.add_argument("--ontology", type=Path)
    export.set_defaults(handler=export_command)

    demo = commands.add_parser("demo", help="extract the shipped demo corpus")
    demo.set_defaults(handler=demo_command)


def load_checked_ontology(settings: Settings) -> Any:
    """The configured ontology, or a clear error naming what is wrong with it."""
    from knowledge_assets.pipeline.ontology import OntologyError, load_ontology

    try:
        return load_ontology(settings.ontology)
    except OntologyError as exc:
        raise UserFacingError(f"ontology: {exc}") from exc


def open_pipeline(settings: Settings) -> Any:
    """An ``ExtractionPipeline`` for the settings; close it when done."""
    from knowledge_assets.pipeline.ontology import OntologyError
    from knowledge_assets.pipeline.pipeline import ExtractionPipeline

    ontology = load_checked_ontology(settings)
    try:
        return ExtractionPipeline(settings, ontology=ontology)
    except OntologyError as exc:  # a broken shapes file (ShapesError) is an OntologyError too
        raise UserFacingError(f"shapes: {exc}") from exc


def extract_command(args: argparse.Namespace, settings: Settings) -> int:
    """Run the direct pipeline on the paths and print what it did."""
    missing = [str(p) for p in args.paths if not p.exists()]
    if missing:
        raise UserFacingError(f"no such file or folder: {', '.join(missing)}")
    pipeline = open_pipeline(settings)
    try:
        result = pipeline.run_paths(args.paths)
    finally:
        pipeline.close()
    if args.json:
        print(json.dumps(result.to_json(), sort_keys=True))
    else:
        print_summary(result)
    return 0 if result.documents or not result.rejected else 1


def print_summary(result: Any) -> None:
    """A pipeline result as aligned lines."""
    print(f"batch {result.batch_id}")
    for key in ("documents", "rejected", "chunks", "mentions", "entities", "relations"):
        print(f"  {key:<16} {getattr(result, key)}")
    print(f"  {'quarantined':<16} {result.quarantined}")
    print(f"  {'extractor calls':<16} {result.extractor_calls} (cache hits {result.cache_hits})")
    print(f"  {'rows inserted':<16} {result.inserted_rows}")
    for rejection in result.rejections:
        print(f"  refused {rejection['name']}: {rejection['reason']}")


def export_command(args: argparse.Namespace, settings: Settings) -> int:
    """Write the graph as Turtle or JSON-LD, or its mentions as JSON lines."""
    from knowledge_assets.db.engine import get_engine
    from knowledge_assets.pipeline.export import export

    pieces = export(get_engine(settings), load_checked_ontology(settings), args.format)
    if args.output:
        with args.output.open("w", encoding="utf-8") as out:
            out.writelines(pieces)
    else:
        sys.stdout.writelines(pieces)
        sys.stdout.flush()  # inside main's BrokenPipeError handler, not at interpreter exit
    return 0


def demo_command(args: argparse.Namespace, settings: Settings) -> int:
    """Extract the shipped demo corpus with the direct pipeline."""
    from knowledge_assets.demo import CORPUS_DIR

    pipeline = open_pipeline(settings)
    try:
        result = pipeline.run_paths([CORPUS_DIR])
    finally:
        pipeline.close()
    print_summary(result)
    where = settings.database_url and "the database at KNOWLEDGE_DATABASE_URL"
    print(f"results are in {where or f'the embedded PostgreSQL under {settings.pgdata_dir}'}")
    print("see them with: knowledge export --format ttl   (or jsonld, mentions)")
    return 0
