"""``knowledge worker [--join FILE]``: serve the platform's runs from this host."""

from __future__ import annotations

import argparse
import os
import socket
from pathlib import Path
from typing import Any

from knowledge_assets.errors import UserFacingError
from knowledge_assets.instance.queues import ALL_QUEUES
from knowledge_assets.settings import Settings

__all__ = ["register"]


def register(commands: Any) -> None:
    """Add ``worker``."""
    worker = commands.add_parser("worker", help="run the platform's runs on this host")
    worker.add_argument(
        "--join", type=Path, metavar="FILE",
        help="the platform's cluster.env (its URLs win over this environment's)",
    )  # fmt: skip
    worker.add_argument(
        "--queues", default=",".join(ALL_QUEUES),
        help=f"comma-separated, of {', '.join(ALL_QUEUES)} (default: all)",
    )  # fmt: skip
    worker.add_argument(
        "--concurrency", type=int, default=os.cpu_count() or 1,
        help="runs at once, one warm process each (default: the number of CPUs)",
    )  # fmt: skip
    worker.add_argument("--name", default=f"worker-{os.getpid()}", help="this worker's name")
    worker.add_argument("--loglevel", default="WARNING", help="Celery's log level")
    worker.set_defaults(handler=worker_command)


def worker_command(args: argparse.Namespace, settings: Settings) -> int:
    """Join, prepare this host's home, print the node name, and serve until SIGTERM."""
    from knowledge_assets.db.engine import database_url, engine_for, get_engine
    from knowledge_assets.instance.home import write_dagster_home
    from knowledge_assets.instance.worker import preload_hook, serve
    from knowledge_assets.platform.services.cluster import joined_environment

    if args.join is not None:
        try:
            os.environ.update(joined_environment(args.join, dict(os.environ)))
        except (OSError, ValueError) as exc:
            raise UserFacingError(f"cannot join with {args.join}: {exc}") from exc
        settings = Settings()
    if not settings.broker_url:
        raise UserFacingError("no broker: pass --join FILE or set KNOWLEDGE_BROKER_URL")
    queues = [q for q in args.queues.split(",") if q]
    unknown = sorted(set(queues) - set(ALL_QUEUES))
    if unknown:
        raise UserFacingError(f"unknown queue {', '.join(unknown)}; one of {', '.join(ALL_QUEUES)}")
    url = database_url(settings)
    get_engine(settings)  # our tables (the leases) exist before the first run
    engine_for(url).dispose()  # no connection may cross the fork into the pool
    home = write_dagster_home(settings)
    os.environ.update(
        KNOWLEDGE_DATABASE_URL=url,
        KNOWLEDGE_STORAGE_URL=settings.storage_location,
        KNOWLEDGE_HOME=str(settings.home),
        DAGSTER_HOME=str(home),
    )
    node = f"{args.name}@{socket.gethostname()}"
    print(f"worker node {node}  queues {','.join(queues)}  concurrency {args.concurrency}")
    print(f"home {settings.home}  (SIGTERM: finish running runs, then stop)", flush=True)
    serve(
        settings.broker_url,
        name=node,
        queues=queues,
        concurrency=args.concurrency,
        preload=preload_hook(home),
        loglevel=args.loglevel,
    )
    return 0
