"""``knowledge delete|stale|reprocess``: a living graph, changed on the platform (or directly).

``delete`` runs a deletion on the platform (a Dagster run you can watch, retried after a crash)
and waits for it; ``--direct`` deletes in this process, for graphs the direct pipeline built.
``stale`` lists the batches whose graph was made under other inputs than the configured ones;
``reprocess`` re-materialises them as one Dagster backfill.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from knowledge_assets.cli.platform_session import orchestrator
from knowledge_assets.errors import UserFacingError
from knowledge_assets.settings import Settings

if TYPE_CHECKING:
    from knowledge_assets.orchestration.lifecycle import DeletionStatus, Reprocess, StaleBatch
    from knowledge_assets.orchestration.orchestrator import Orchestrator

__all__ = ["register"]

DAEMON_SILENCE_S = 60.0


def register(commands: Any) -> None:
    """Add ``delete``, ``stale`` and ``reprocess``."""
    delete = commands.add_parser("delete", help="delete documents by id (name) and forget them")
    delete.add_argument("documents", nargs="+", metavar="DOC_ID")
    delete.add_argument("--json", action="store_true", help="end with one JSON line")
    delete.add_argument("--no-wait", action="store_true", help="return once it is queued")
    delete.add_argument("--timeout", type=float, default=600.0, help="seconds to wait")
    delete.add_argument(
        "--direct", action="store_true", help="delete in this process (graphs built by extract)"
    )
    delete.set_defaults(handler=delete_command)

    stale = commands.add_parser("stale", help="batches made under other inputs than today's")
    stale.add_argument("--json", action="store_true", help="one JSON line: the stale batches")
    stale.set_defaults(handler=stale_command)

    reprocess = commands.add_parser(
        "reprocess", help="re-materialise stale batches (one Dagster backfill)"
    )
    reprocess.add_argument("batches", nargs="*", metavar="BATCH")
    reprocess.add_argument("--stale", action="store_true", help="every stale batch")
    reprocess.add_argument("--json", action="store_true", help="end with one JSON line")
    reprocess.add_argument("--no-wait", action="store_true", help="return once it is requested")
    reprocess.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait")
    reprocess.set_defaults(handler=reprocess_command)


def delete_command(args: argparse.Namespace, settings: Settings) -> int:
    """Delete documents; exit 2 for an unknown id or a document being processed."""
    if args.direct:
        return _delete_directly(args, settings)
    from knowledge_assets.orchestration.orchestrator import (
        BatchTimeout,
        DocumentsBusy,
        UnknownDocuments,
    )

    with orchestrator(settings) as orch:
        try:
            status = orch.delete(args.documents)
        except (UnknownDocuments, DocumentsBusy) as exc:
            raise UserFacingError(str(exc)) from exc
        waiting = not args.no_wait and not status.state.terminal and _daemon_alive(orch)
        if not args.json:
            print(f"deletion {status.deletion_id}: {status.state}", flush=True)
        if waiting:
            try:
                status = orch.wait_deletion(status.deletion_id, timeout_s=args.timeout)
            except BatchTimeout as exc:
                raise UserFacingError(f"{exc}; it goes on on the platform") from exc
    _report_deletion(status, args.json)
    return 1 if status.state == "failed" else 0


def _delete_directly(args: argparse.Namespace, settings: Settings) -> int:
    from knowledge_assets.pipeline.lifecycle.requests import UnknownDocuments
    from knowledge_assets.pipeline.pipeline import delete_directly, platform_documents

    staged = platform_documents(settings, args.documents)
    if staged:
        raise UserFacingError(
            f"{', '.join(staged)} came through the platform: delete without --direct, so the "
            "deletion runs there and forgets the stored asset values too"
        )
    try:
        done = delete_directly(settings, args.documents)
    except UnknownDocuments as exc:
        raise UserFacingError(str(exc)) from exc
    if args.json:
        print(json.dumps(done.to_json(), sort_keys=True))
        return 0
    for name, earlier in sorted(done.earlier.items()):
        print(f"{name}: deleted before by {earlier}")
    if done.deletion_id is not None:
        print(f"deletion {done.deletion_id}: complete")
        print(f"  deleted      {', '.join(done.deleted) or '-'}")
        print(f"  retracted    {sum(done.retracted.values())} rows")
        print(f"  forgot       {done.forgotten_cache_entries} cached extractions")
    return 0


def _report_deletion(status: DeletionStatus, as_json: bool) -> None:
    if as_json:
        print(json.dumps(status.model_dump(mode="json"), sort_keys=True))
        return
    print(f"deletion {status.deletion_id}: {status.state}")
    for name, earlier in sorted(status.earlier.items()):
        print(f"  {name}: deleted before by {earlier}")
    print(f"  documents    {', '.join(status.documents)}")
    counts = status.counts
    if counts.rows_retracted is not None:
        print(f"  retracted    {counts.rows_retracted} rows")
        print(
            f"  forgot       {counts.cache_entries_forgotten} cached extractions, "
            f"{counts.blobs_forgotten} stored documents, "
            f"{counts.stored_values_rewritten} stored asset values rewritten"
        )
    if status.error:
        print(f"  error        {status.error}")
    print(f"  runs         {len(status.runs)}")


def stale_command(args: argparse.Namespace, settings: Settings) -> int:
    """List stale batches and what changed for each."""
    with orchestrator(settings) as orch:
        stale = orch.stale()
    _report_stale(stale, args.json)
    return 0


def _report_stale(stale: list[StaleBatch], as_json: bool) -> None:
    if as_json:
        print(json.dumps([s.model_dump(mode="json") for s in stale], sort_keys=True))
        return
    if not stale:
        print("no stale batch: every batch was made under the configured inputs")
        return
    for batch in stale:
        changes = ", ".join(
            f"{name} {change.recorded or '(not recorded)'} -> {change.current}"
            for name, change in sorted(batch.changed.items())
        )
        print(f"{batch.batch_id}: {changes}")


def reprocess_command(args: argparse.Namespace, settings: Settings) -> int:
    """Re-materialise the named or the stale batches as one backfill, and wait for it."""
    if bool(args.batches) == bool(args.stale):
        raise UserFacingError("name the batches to reprocess, or give --stale (not both)")
    from knowledge_assets.orchestration.orchestrator import BatchesBusy, UnknownBatchError

    with orchestrator(settings) as orch:
        batch_ids = [s.batch_id for s in orch.stale()] if args.stale else list(args.batches)
        if not batch_ids:
            _report_reprocess(None, args.json)
            return 0
        try:
            status = orch.reprocess(batch_ids)
        except UnknownBatchError as exc:
            raise UserFacingError(f"no batch {exc.args[0]!r} under {settings.home}") from exc
        except BatchesBusy as exc:
            raise UserFacingError(str(exc)) from exc
        if not args.json:
            print(f"backfill {status.backfill_id}: {len(batch_ids)} batch(es)", flush=True)
        if not args.no_wait and _daemon_alive(orch):
            status = orch.wait_reprocess(status.backfill_id, timeout_s=args.timeout)
    _report_reprocess(status, args.json)
    return 0 if status.succeeded or not status.finished else 1


def _report_reprocess(status: Reprocess | None, as_json: bool) -> None:
    if as_json:
        print(json.dumps(status.model_dump(mode="json") if status else None, sort_keys=True))
    elif status is None:
        print("no stale batch: nothing to reprocess")
    else:
        print(f"backfill {status.backfill_id}: {status.state} ({len(status.runs)} runs)")
        for batch_id in status.batches:
            print(f"  {batch_id}")


def _daemon_alive(orch: Orchestrator) -> bool:
    if orch.daemon_alive(within_s=DAEMON_SILENCE_S):
        return True
    print(
        "note: the platform is not running under this KNOWLEDGE_HOME; this runs when it does "
        "(`make run` or `knowledge up`)",
        flush=True,
    )
    return False
