"""``knowledge submit|batches|status|cancel|resume``: batches on the platform ``knowledge up`` runs.

These commands use the same orchestrator as the API, against the database and Dagster instance of
the same ``KNOWLEDGE_HOME``; the running daemon picks the batches up.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from knowledge_assets.cli.platform_session import known_batch, orchestrator
from knowledge_assets.cli.text import counted, timestamp
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

    listing = commands.add_parser("batches", help="list batches, newest first, with their state")
    listing.add_argument("--limit", type=int, default=20, help="how many (default 20)")
    listing.add_argument("--offset", type=int, default=0, help="skip the newest N")
    listing.add_argument("--json", action="store_true", help="one JSON line: a list of batches")
    listing.set_defaults(handler=batches_command)

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
    """Stage the files as a batch, start it, and optionally wait for or follow it to its end.

    When every document is refused nothing is submitted: the reasons are printed, exit code 2.
    """
    from knowledge_assets.pipeline.batches import NothingAccepted
    from knowledge_assets.pipeline.documents import read_paths

    missing = [str(p) for p in args.paths if not p.exists()]
    if missing:
        raise UserFacingError(f"no such file or folder: {', '.join(missing)}")
    items, refused = read_paths(args.paths, max_bytes=settings.max_document_bytes)
    with orchestrator(settings) as orch:
        try:
            status = orch.submit(items, refused=refused, source="cli")
        except NothingAccepted as nothing:
            return _all_refused(nothing, args.json)
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


def _all_refused(nothing: Any, as_json: bool) -> int:
    """Every document was refused: say why for each one; exit code 2, as for any user error."""
    lines = [f"  {r.name}: {r.reason}" for r in nothing.rejections] or ["  no files found"]
    print("knowledge: error: every document was refused; nothing was submitted:", file=sys.stderr)
    print("\n".join(lines), file=sys.stderr)
    if as_json:
        documents = [r.model_dump(include={"name", "code", "reason"}) for r in nothing.rejections]
        error = {"code": "all_documents_refused", "message": str(nothing), "documents": documents}
        print(json.dumps({"error": error}, sort_keys=True))
    return 2


def batches_command(args: argparse.Namespace, settings: Settings) -> int:
    """List batches with state, source, times and counts."""
    if args.limit < 1 or args.offset < 0:
        raise UserFacingError("--limit must be at least 1 and --offset at least 0")
    with orchestrator(settings) as orch:
        statuses = orch.list_batches(offset=args.offset, limit=args.limit)
    if args.json:
        print(json.dumps([s.model_dump(mode="json") for s in statuses], sort_keys=True))
        return 0
    if not statuses:
        print(f"no batches under {settings.home} yet: `knowledge submit PATH`")
        return 0
    print(BATCH_HEADER)
    for status in statuses:
        print(batch_line(status))
    return 0


BATCH_HEADER = (
    f"{'batch':<18} {'state':<13} {'source':<6} {'submitted':<19} {'duration':>9}  "
    "documents  chunks     entities  relations"
)


def batch_line(status: BatchStatus) -> str:
    """One batch as a row under ``BATCH_HEADER``."""
    p = status.progress
    submitted = (
        status.submitted_at.astimezone().strftime("%Y-%m-%d %H:%M:%S")
        if status.submitted_at
        else "?"
    )
    duration = f"{status.duration_s:.1f} s" if status.duration_s is not None else "-"
    documents = f"{p.documents}" + (f" (+{p.rejected} refused)" if p.rejected else "")
    return (
        f"{status.batch_id:<18} {status.state.value:<13} {status.source or '?':<6} "
        f"{submitted:<19} {duration:>9}  {documents:<9}  {p.chunks_done:>4}/{p.chunks_total:<5}"
        f" {p.entities:>8}  {p.relations:>9}"
    )


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
    entities, relations = (
        counted(progress.entities, "entity"),
        counted(progress.relations, "relation"),
    )
    print(f"  graph        {entities}, {relations}")
    print(f"  quarantined  {progress.quarantined}")
    print(f"  submitted    {timestamp(status.submitted_at)} by {status.source or '?'}")
    if status.finished_at is not None:
        took = f" after {status.duration_s:.1f} s" if status.duration_s is not None else ""
        print(f"  finished     {timestamp(status.finished_at)}{took}")
    if status.error:
        print(f"  error        {status.error} (failed in {status.failed_stage})")
    for document in status.documents:
        if document.status != "accepted":
            print(f"  {document.status:<12} {document.name}: {document.reason}")
    _report_cost(status)
    for name, change in sorted(status.stale.items()):
        print(f"  stale        {name} {change.recorded or '(not recorded)'} -> {change.current}")
    print(f"  runs         {len(status.runs)}")
    for run_id in status.runs:
        print(f"    {run_id}  {status.workers.get(run_id, '(no worker yet)')}")


def _report_cost(status: BatchStatus) -> None:
    cost = status.cost
    if not cost.seconds:
        return
    tokens = f", {cost.prompt_tokens}+{cost.completion_tokens} tokens" if cost.prompt_tokens else ""
    print(
        f"  cost         {counted(cost.extractor_calls, 'extractor call')}, "
        f"{counted(cost.cache_hits, 'cache hit')}{tokens}"
    )
    seconds = ", ".join(f"{stage} {s:.2f} s" for stage, s in cost.seconds.items())
    print(f"  seconds      {seconds}")
