"""``knowledge up``: run the platform in the foreground until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
from typing import Any

from knowledge_assets.settings import Settings

__all__ = ["register"]


def register(commands: Any) -> None:
    """Add ``up``."""
    up = commands.add_parser("up", help="run the platform (database, Dagster UI, daemon, API)")
    up.add_argument("--demo", action="store_true", help="drop the demo corpus into the inbox")
    up.set_defaults(handler=up_command)


def up_command(args: argparse.Namespace, settings: Settings) -> int:
    """Start every process, print where things are, and supervise until stopped."""
    from knowledge_assets.platform.supervisor import Platform

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
    # The token itself only when it was just made (the one time a user needs to see it):
    # stdout often lands in a log file, which is no place for a secret.
    if token.source == "environment":
        print("API token:   from KNOWLEDGE_API_TOKEN", flush=True)
    elif token.source == "generated":
        print(f"API token:   {token.value}  (new; kept in {settings.api_token_file})", flush=True)
    else:
        print(f"API token:   in {settings.api_token_file} (mode 0600)", flush=True)
