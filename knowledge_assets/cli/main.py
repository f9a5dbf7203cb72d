"""The ``knowledge`` command line: one argparse app assembled from the command modules."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from knowledge_assets.cli import batches, direct, evaluate, follow, lifecycle, resolve, up, worker
from knowledge_assets.errors import UserFacingError
from knowledge_assets.settings import Settings

__all__ = ["build_parser", "main"]

DESCRIPTION = (
    "Turn document batches into a knowledge graph: run the pipeline directly (extract), or run "
    "the durable platform (up) and send it batches (submit, status, follow, cancel, resume); "
    "delete documents, list what an input change made stale and reprocess it."
)
# Each module adds its subcommands with ``register(commands)``; a handler is called as
# ``handler(args, settings)`` with the settings this invocation reads once.
COMMAND_MODULES = (direct, batches, follow, lifecycle, up, worker, resolve, evaluate)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``knowledge`` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.handler(args, command_settings(args)) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return _reader_went_away()
    except UserFacingError as exc:
        print(f"knowledge: error: {exc}", file=sys.stderr)
        return 2
    finally:
        from knowledge_assets.db.engine import stop_embedded

        stop_embedded()


def build_parser() -> argparse.ArgumentParser:
    """The parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="knowledge", description=DESCRIPTION, formatter_class=_HelpFormatter
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(commands)
    return parser


class _HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, measuring subcommand names at the indent they are printed at.

    argparse measures them two columns left of where it prints them, so a name of nine
    characters ("reprocess") overflows its column and its help drops to the next line.
    """

    def add_argument(self, action: argparse.Action) -> None:
        """Measure as argparse does, then each subcommand name at its own indent."""
        super().add_argument(action)
        if action.help is argparse.SUPPRESS:
            return
        for subaction in self._iter_indented_subactions(action):
            length = len(self._format_action_invocation(subaction)) + self._current_indent
            self._action_max_length = max(self._action_max_length, length)


def command_settings(args: argparse.Namespace) -> Settings:
    """Settings from the environment, with the command's ``--ontology``/``--extractor`` on top."""
    overrides: dict[str, Any] = {}
    if getattr(args, "ontology", None):
        overrides["ontology"] = args.ontology
    if getattr(args, "extractor", None):
        overrides["extractor"] = args.extractor
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"KNOWLEDGE_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
            for e in exc.errors()
        )
        raise UserFacingError(f"invalid settings: {problems}") from exc


def _reader_went_away() -> int:
    # `knowledge export | head`: the reader closed the pipe. Point stdout at /dev/null so the
    # interpreter's final flush does not raise again, and exit as a killed writer would.
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 141


if __name__ == "__main__":
    raise SystemExit(main())
