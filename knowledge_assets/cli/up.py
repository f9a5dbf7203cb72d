"""``knowledge up``: run the platform in the foreground until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from knowledge_assets.cli.text import counted
from knowledge_assets.errors import UserFacingError
from knowledge_assets.settings import Settings

if TYPE_CHECKING:
    from knowledge_assets.platform.supervisor import DemoDrop

__all__ = ["demo_banner", "register"]


def register(commands: Any) -> None:
    """Add ``up``."""
    up = commands.add_parser(
        "up", help="run the platform (services, Dagster UI, daemon, API, workers)"
    )
    up.add_argument("--demo", action="store_true", help="drop the demo corpus into the inbox")
    up.add_argument(
        "--workers", type=int, default=1, metavar="N",
        help="local run workers (default 1; 0: control plane only, workers join from elsewhere)",
    )  # fmt: skip
    up.add_argument(
        "--listen", metavar="ADDRESS",
        help="serve other hosts: PostgreSQL, Valkey and S3 storage listen on ADDRESS",
    )  # fmt: skip
    up.add_argument(
        "--advertise", metavar="HOST", help="how other hosts reach this one (for cluster.env)"
    )
    up.set_defaults(handler=up_command)


def up_command(args: argparse.Namespace, settings: Settings) -> int:
    """Start every process, print where things are, and supervise until stopped."""
    from knowledge_assets.platform.supervisor import Platform

    if args.workers < 0:
        raise UserFacingError("--workers must be 0 or more")
    platform = Platform(
        settings,
        demo=args.demo,
        workers=args.workers,
        listen=args.listen,
        advertise=args.advertise,
    )
    platform.start()
    for name, report in platform.started.items():
        how = "adopted" if report.adopted else "started"
        print(f"{name + ':':<13}{how} in {report.seconds:.2f} s", flush=True)
    print(f"Dagster UI:  http://{settings.ui_host}:{settings.ui_port}", flush=True)
    _print_api(settings, platform.api_token)
    print(f"inbox:       {settings.inbox_dir}  (drop .txt/.md files here)", flush=True)
    print(f"state:       {settings.home}   logs: {settings.home / 'logs'}", flush=True)
    joined = "to add workers" if args.listen else "for more local workers"
    print(f"workers:     {platform.workers} local; {joined}: knowledge worker --join "
          f"{settings.home / 'cluster.env'}", flush=True)  # fmt: skip
    if platform.demo_drop is not None:
        print(demo_banner(platform.demo_drop), flush=True)
    print("Ctrl-C stops everything", flush=True)
    return platform.wait()


def demo_banner(drop: DemoDrop) -> str:
    """What ``--demo`` did, in one line: a restart says it dropped nothing again."""
    dropped, kept = counted(len(drop.dropped), "file"), counted(len(drop.kept), "file")
    if not drop.kept:
        return f"demo corpus: {dropped} dropped into the inbox; watch the assets fill in"
    if not drop.dropped:
        return f"demo corpus: all {kept} submitted before; nothing dropped"
    return f"demo corpus: {dropped} dropped into the inbox; {kept} submitted before left alone"


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
