"""``knowledge submit|status|cancel|resume``: batches on the platform that ``knowledge up`` runs.

These commands use the same orchestrator as the API, against the database and Dagster instance of
the same ``KNOWLEDGE_HOME``; the running daemon picks the batches up.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from knowledge_assets.cli.platform_session import known_batch, orchestrator
from knowledge_assets.errors import UserFacingError
from knowledge_assets.settings import Settings

if TYPE_CHECKING:
    from knowledge_assets.orchestration.orchestrator import Orchestrator
    from knowledge_assets.orchestration.state import BatchStatus

DAEMON_SILENCE_S = 60.0


def register(commands: Any) -> None:
    """Add the batch commands to the ``knowledge`` parser."""
    submit = commands.add_parser("submit", help="submit files or folders as a batch")
    submit.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    submit.add_argument("--wait", action="store_true", help="block until Complete or Failed")
    submit.add_argument("--timeout", type=float, default=3600.0, help="seconds --wait waits")
    submit.add_argument("--json", action="store_true", help="end with one JSON line")
    submit.add_argument("--follow", action="store_true", help="show live progress bars to the end")
    submit.set_defaults(handler=submit_command)

    status = commands.add_parser("status", help="a batch's state, stage and progress")
    status.add_argument("batch_id", metavar="BATCH")
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler=status_command)

    cancel = commands.add_parser("cancel", help="interrupt a batch (it stays resumable)")
    cancel.add_argument("batch_id", metavar="BATCH")
    cancel.add_argument("--json", action="store_true")
    cancel.set_defaults(handler=cancel_command)

    resume = commands.add_parser("resume", help="resume a failed or interrupted batch")
    resume.add_argument("batch_id", metavar="BATCH")
    resume.add_argument("--json", action="store_true")
    resume.set_defaults(handler=resume_command)


def submit_command(args: argparse.Namespace, settings: Settings) -> int:
    """Stage the files as a batch, start it, and optionally wait for or follow it to its end."""
    from knowledge_assets.pipeline.documents import read_paths

    missing = [str(p) for p in args.paths if not p.exists()]
    if missing:
        raise UserFacingError(f"no such file or folder: {', '.join(missing)}")
    items, refused = read_paths(args.paths, max_bytes=settings.max_document_bytes)
    if not items:
        reasons = "; ".join(f"{r.name}: {r.reason}" for r in refused) or "no files found"
        raise UserFacingError(f"nothing to submit ({reasons})")
    with orchestrator(settings) as orch:
        status = orch.submit(items, refused=refused)
        _warn_without_daemon(orch)
        if not args.json:
            print(f"batch {status.batch_id}: {status.state}", flush=True)
        if args.follow:
            from knowledge_assets.cli.follow import follow_batch

            final = follow_batch(orch, status.batch_id)
            print(f"batch {status.batch_id}: {final}", flush=True)
            return 0 if final == "complete" else 1
        if args.wait:
            from knowledge_assets.orchestration.orchestrator import BatchTimeout

            try:
                status = orch.wait(status.batch_id, timeout_s=args.timeout)
            except BatchTimeout as exc:
                message = f"{exc}; it goes on: `knowledge status {status.batch_id}`"
                raise UserFacingError(message) from exc
    _report(status, args.json, short=not args.wait)
    return 0 if status.state.value != "failed" else 1


def status_command(args: argparse.Namespace, settings: Settings) -> int:
    """Print a batch's state."""
    with orchestrator(settings) as orch:
        _report(known_batch(orch, "poll", args.batch_id, settings), args.json)
    return 0


def cancel_command(args: argparse.Namespace, settings: Settings) -> int:
    """Interrupt a batch's active run and return once it has stopped."""
    with orchestrator(settings) as orch:
        _report(known_batch(orch, "interrupt", args.batch_id, settings), args.json)
    return 0


def resume_command(args: argparse.Namespace, settings: Settings) -> int:
    """Re-execute a failed batch from its failure."""
    with orchestrator(settings) as orch:
        _report(known_batch(orch, "resume", args.batch_id, settings), args.json)
    return 0


def _warn_without_daemon(orch: Orchestrator) -> None:
    if not orch.daemon_alive(within_s=DAEMON_SILENCE_S):
        print(
            "note: the platform is not running under this KNOWLEDGE_HOME; the batch starts "
            "when it does (`make run` or `knowledge up`)",
            flush=True,
        )


def _report(status: BatchStatus, as_json: bool, *, short: bool = False) -> None:
    if as_json:
        fields = {"batch_id", "state"} if short else None
        print(json.dumps(status.model_dump(mode="json", include=fields), sort_keys=True))
        return
    print(
        f"batch {status.batch_id}: {status.state}" + (f" ({status.stage})" if status.stage else "")
    )
    if short:
        return
    progress = status.progress
    print(f"  documents    {progress.documents} accepted, {progress.rejected} refused")
    print(
        f"  chunks       {progress.chunks_done}/{progress.chunks_total} extracted "
        f"({progress.chunks_reused} from the checkpoint cache)"
    )
    print(f"  graph        {progress.entities} entities, {progress.relations} relations")
    print(f"  quarantined  {progress.quarantined}")
    if status.error:
        print(f"  error        {status.error} (failed in {status.failed_stage})")
    for document in status.documents:
        if document.status != "accepted":
            print(f"  {document.status:<12} {document.name}: {document.reason}")
    print(f"  runs         {len(status.runs)}")
    for run_id in status.runs:
        print(f"    {run_id}  {status.workers.get(run_id, '(no worker yet)')}")
