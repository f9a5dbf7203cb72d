"""A minimal SSE reader for tests: ``id:``/``event:``/``data:`` lines into events."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True)
class Event:
    id: str | None
    kind: str
    data: dict[str, Any]


def parse_events(lines: Iterator[str]) -> Iterator[Event]:
    """Events from SSE lines; comments (heartbeats) are skipped."""
    event_id: str | None = None
    kind = "message"
    data: list[str] = []
    for line in lines:
        if line == "":
            if data:
                yield Event(event_id, kind, json.loads("\n".join(data)))
            event_id, kind, data = None, "message", []
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "id":
                event_id = value
            elif field == "event":
                kind = value
            elif field == "data":
                data.append(value)


def stream(
    client: httpx.Client, url: str, headers: dict[str, str], last_id: str | None = None
) -> Iterator[Event]:
    """Events of one connection until the server ends it (or the caller stops iterating)."""
    if last_id is not None:
        headers = dict(headers, **{"Last-Event-ID": last_id})
    with client.stream("GET", url, headers=headers, timeout=httpx.Timeout(60)) as response:
        assert response.status_code == 200, response.read()
        yield from parse_events(response.iter_lines())


def order_key(event_id: str) -> tuple[int, int]:
    head, _, tail = event_id.partition(".")
    return int(head), int(tail or 0)
