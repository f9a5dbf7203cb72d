"""``knowledge submit --follow`` / ``knowledge follow``: live progress bars fed by the API's SSE.

The client keeps the id of the last event it received and, whenever the connection drops (API
restarted, network blip), reconnects with ``Last-Event-ID`` so no event is lost or shown twice.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import httpx

from knowledge_assets.errors import UserFacingError
from knowledge_assets.orchestration.state import STAGES
from knowledge_assets.settings import Settings

__all__ = [
    "ApiClient",
    "FollowError",
    "ProgressBoard",
    "api_client",
    "follow_batch",
    "follow_to_end",
    "register",
]

_BAR = 24
_TRANSIENT = (httpx.TransportError, httpx.RemoteProtocolError)


class FollowError(UserFacingError):
    """The API could not be reached or refused us; the message says what to do."""


def api_client(settings: Settings) -> ApiClient:
    """A client for the API of the platform running under this ``KNOWLEDGE_HOME``."""
    token = settings.api_token.get_secret_value() if settings.api_token else None
    if token is None and settings.api_token_file.is_file():
        token = settings.api_token_file.read_text(encoding="utf-8").strip()
    if not token:
        raise FollowError(
            f"no API token: set KNOWLEDGE_API_TOKEN or start `knowledge up` "
            f"(it writes {settings.api_token_file})"
        )
    return ApiClient(os.environ.get("KNOWLEDGE_API_URL", settings.api_url), token)


@dataclass
class ApiClient:
    """The few API calls the command line makes."""

    base_url: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        """The bearer header."""
        return {"Authorization": f"Bearer {self.token}"}

    def submit_files(self, paths: Sequence[Path]) -> dict[str, Any]:
        """Upload files as one batch; the answer holds ``batch_id`` and ``state``."""
        files = [("files", (p.name, p.read_bytes(), "text/plain")) for p in paths]
        response = self._call("POST", "/batches", files=files, timeout=300)
        return dict(response.json())

    def batch(self, batch_id: str) -> dict[str, Any]:
        """The batch's current status."""
        return dict(self._call("GET", f"/batches/{batch_id}").json())

    def events(self, batch_id: str, last_id: str | None) -> Iterator[tuple[str | None, str, dict]]:
        """``(id, kind, data)`` of one connection's events, until the server ends it."""
        headers = dict(self.headers, **({"Last-Event-ID": last_id} if last_id else {}))
        url = f"{self.base_url}/batches/{batch_id}/events"
        timeout = httpx.Timeout(10, read=60)  # heartbeats arrive far more often than 60 s
        with httpx.stream("GET", url, headers=headers, timeout=timeout) as response:
            _raise_for_api(response)
            yield from _sse(response.iter_lines())

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = httpx.request(method, self.base_url + path, headers=self.headers, **kwargs)
        except httpx.TransportError as exc:
            raise FollowError(
                f"cannot reach the API at {self.base_url}: is `knowledge up` running?"
            ) from exc
        _raise_for_api(response)
        return response


def _raise_for_api(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    response.read()
    try:
        error = response.json()["error"]
        message = f"{error['code']}: {error['message']}"
    except (ValueError, KeyError, TypeError):
        message = f"HTTP {response.status_code}"
    raise FollowError(f"the API refused: {message}")


def _sse(lines: Iterator[str]) -> Iterator[tuple[str | None, str, dict]]:
    event_id: str | None = None
    kind = "message"
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield event_id, kind, json.loads("\n".join(data))
            event_id, kind, data = None, "message", []
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "id":
                event_id = value
            elif name == "event":
                kind = value
            elif name == "data":
                data.append(value)


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
            self.note = f"{data.get('entities')} entities, {data.get('relations')} relations"
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


def follow_batch(
    client: ApiClient, batch_id: str, out: TextIO = sys.stdout, give_up_after_s: float = 120.0
) -> str:
    """Show the batch's progress until it ends; return its final state.

    Reconnects with the last event id after any dropped connection; gives up after
    ``give_up_after_s`` seconds without reaching the API.
    """
    board = ProgressBoard(batch_id, out)
    last_id: str | None = None
    unreachable_since: float | None = None
    while True:
        try:
            for event_id, kind, data in client.events(batch_id, last_id):
                unreachable_since = None
                last_id = event_id or last_id
                board.apply(kind, data)
                if kind == "complete" or (kind == "error" and data.get("will_retry") is False):
                    return board.state
            return str(client.batch(batch_id)["state"])  # the stream ended: ask where it stopped
        except _TRANSIENT as exc:
            unreachable_since = unreachable_since or time.monotonic()
            if time.monotonic() - unreachable_since > give_up_after_s:
                raise FollowError(f"lost the API at {client.base_url}: {exc}") from exc
            time.sleep(1.0)


def register(commands: Any) -> None:
    """Add ``knowledge follow BATCH`` to the ``knowledge`` parser."""
    follow = commands.add_parser("follow", help="live progress bars of a batch, to its end")
    follow.add_argument("batch_id", metavar="BATCH")
    follow.set_defaults(handler=lambda args: follow_to_end(args.batch_id))


def follow_to_end(batch_id: str) -> int:
    """Follow the batch through the API of the platform under ``KNOWLEDGE_HOME``; 0 if Complete."""
    client = api_client(Settings())
    state = follow_batch(client, batch_id)
    print(f"batch {batch_id}: {state}", flush=True)  # noqa: T201 - the command's own output
    return 0 if state == "complete" else 1
