"""``knowledge follow`` and ``submit --follow``: live progress bars of a batch, to its end.

The events come from the Orchestrator, read from Dagster's event log exactly as the API's SSE
stream reads them (same kinds, same ids), so the terminal needs no API, token or network: only
what every batch command needs, the platform's database under ``KNOWLEDGE_HOME``. When the
database goes away for a moment (a restart), following resumes after the last event shown.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

import sqlalchemy.exc

from knowledge_assets.cli.platform_session import known_batch, orchestrator
from knowledge_assets.cli.text import counted
from knowledge_assets.errors import UserFacingError
from knowledge_assets.pipeline.progress import STAGES
from knowledge_assets.settings import Settings

if TYPE_CHECKING:
    from knowledge_assets.orchestration.events import EventId
    from knowledge_assets.orchestration.orchestrator import Orchestrator

__all__ = ["ProgressBoard", "follow_batch", "register"]

_BAR = 24
_GIVE_UP_AFTER_S = 120.0


def register(commands: Any) -> None:
    """Add ``knowledge follow BATCH``."""
    follow = commands.add_parser("follow", help="live progress bars of a batch, to its end")
    follow.add_argument("batch_id", metavar="BATCH")
    follow.set_defaults(handler=follow_command)


def follow_command(args: argparse.Namespace, settings: Settings) -> int:
    """Follow the batch to its end; exit 0 if it completed."""
    with orchestrator(settings) as orch:
        known_batch(orch, "poll", args.batch_id, settings)
        state = follow_batch(orch, args.batch_id)
    print(f"batch {args.batch_id}: {state}", flush=True)
    return 0 if state == "complete" else 1


def follow_batch(orch: Orchestrator, batch_id: str, out: TextIO = sys.stdout) -> str:
    """Show the batch's progress until it ends; return its final state.

    A lost database connection is retried from the last event shown, for up to two minutes.
    """
    board = ProgressBoard(batch_id, out)
    last: EventId | None = None
    unreachable_since: float | None = None
    while True:
        try:
            for event in orch.events(batch_id, after=last):
                unreachable_since = None
                last = _event_id(event.id)
                board.apply(event.kind, event.model_dump(exclude_none=True))
            return board.state
        except sqlalchemy.exc.OperationalError as exc:
            unreachable_since = unreachable_since or time.monotonic()
            if time.monotonic() - unreachable_since > _GIVE_UP_AFTER_S:
                raise UserFacingError(f"lost the platform's database: {exc.orig}") from exc
            time.sleep(1.0)


def _event_id(text: str) -> EventId:
    from knowledge_assets.orchestration.events import EventId

    return EventId.parse(text)


@dataclass
class ProgressBoard:
    """One bar per stage; redrawn in place on a terminal, one line per change otherwise."""

    batch_id: str
    out: TextIO
    state: str = "pending"
    done: dict[str, tuple[int, int]] = field(default_factory=dict)
    finished: set[str] = field(default_factory=set)
    note: str = ""
    _drawn: int = 0

    def apply(self, kind: str, data: dict[str, Any]) -> None:
        """Take one event into the board and show it."""
        stage = data.get("stage")
        if kind in ("state", "complete"):
            self.state = data["state"]
        elif kind == "stage" and stage and data.get("status") == "finished":
            self.finished.add(stage)
        elif kind == "progress" and stage and data.get("total"):
            self.done[stage] = (data["done"], data["total"])
        elif kind == "entity_count":
            entities, relations = int(data.get("entities") or 0), int(data.get("relations") or 0)
            self.note = f"{counted(entities, 'entity')}, {counted(relations, 'relation')}"
        elif kind in ("retry", "error"):
            self.note = f"{kind}: {data.get('message', '')}"
        self._show(kind, data)

    def lines(self) -> list[str]:
        """The board as text lines."""
        rows = [f"batch {self.batch_id}  {self.state.upper()}  {self.note}".rstrip()]
        for stage in STAGES:
            done, total = self.done.get(stage, (0, 0))
            if stage in self.finished:
                done, total = (total, total) if total else (1, 1)
            filled = int(_BAR * done / total) if total else 0
            count = f"{done}/{total}" if total else ""
            mark = "done" if stage in self.finished else count
            rows.append(f"  {stage:<18} [{'#' * filled}{'.' * (_BAR - filled)}] {mark}")
        return rows

    def _show(self, kind: str, data: dict[str, Any]) -> None:
        if self.out.isatty():
            if self._drawn:
                self.out.write(f"\x1b[{self._drawn}F")
            lines = self.lines()
            self.out.write("".join(f"\x1b[2K{line}\n" for line in lines))
            self._drawn = len(lines)
        elif kind in ("state", "stage", "retry", "error", "complete") or (
            kind == "progress" and data.get("done") == data.get("total")
        ):
            detail = {
                k: v
                for k, v in data.items()
                if k in ("state", "stage", "status", "done", "total", "message")
            }
            self.out.write(f"{kind:<12} {json.dumps(detail, sort_keys=True)}\n")
        self.out.flush()
