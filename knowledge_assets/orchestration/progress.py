"""Progress lines written into the Dagster event log by a running step, and their parser.

A step can only add plain log messages cheaply (about 4 ms each, see ARCHITECTURE.md), so progress
travels as a log message with a fixed prefix and a JSON payload that followers parse back.
"""

from __future__ import annotations

import json
from typing import Any

PROGRESS_PREFIX = "knowledge.progress "


def format_progress(stage: str, done: int, total: int, reused: int = 0) -> str:
    """The log message for ``done`` of ``total`` units (``reused`` of them from the cache)."""
    payload = {"stage": stage, "done": done, "total": total, "reused": reused}
    return PROGRESS_PREFIX + json.dumps(payload, sort_keys=True)


def parse_progress(message: str | None) -> dict[str, Any] | None:
    """The payload of a progress message, or None for any other message."""
    if not message or not message.startswith(PROGRESS_PREFIX):
        return None
    try:
        payload = json.loads(message[len(PROGRESS_PREFIX) :])
    except json.JSONDecodeError:
        return None
    if not isinstance(payload, dict) or not {"stage", "done", "total"} <= payload.keys():
        return None
    return payload
