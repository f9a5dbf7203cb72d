"""Is a run's worker process alive? Judged from the PID Dagster recorded, on this host only.

A plain ``kill(pid, 0)`` is wrong twice over (ARCHITECTURE.md, measured): a worker whose parent died
too lingers as a zombie, and after a restart its PID may belong to a new process. So a PID counts
as the worker only if the process exists, is not a zombie, and was created no later than the
event that recorded it.
"""

from __future__ import annotations

import dagster as dg
import psutil

# Process start times are rounded by the kernel (clock ticks) and the event is written after
# the process started: allow a little slack before calling a PID reused.
_START_SLACK_S = 2.0
_PID_EVENT_PREFIX = "Started process for run"


def run_worker_pid(instance: dg.DagsterInstance, run_id: str) -> tuple[int, float] | None:
    """The run worker's PID and the time it was recorded, or None if no event names it."""
    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ENGINE_EVENT, limit=50
    ).records
    for record in records:
        entry = record.event_log_entry
        event = entry.dagster_event
        text = (event.message if event else None) or entry.user_message or ""
        if event is None or _PID_EVENT_PREFIX not in text:
            continue
        pid = event.engine_event_data.metadata.get("pid") if event.engine_event_data else None
        if pid is not None:
            return int(str(pid.value)), entry.timestamp
    return None


def worker_alive(pid: int, recorded_at: float) -> bool:
    """True when ``pid`` is still the process that started at or before ``recorded_at``."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return process.create_time() <= recorded_at + _START_SLACK_S
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True  # someone else's process we cannot inspect: never judge a live run dead
