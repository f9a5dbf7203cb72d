"""The Celery settings shared by the run launcher (in the daemon) and the workers.

Both sides build their app from ``celery_settings()``, so a setting cannot differ between them.
Each value was chosen by a failure trial (docs/scaling.md): a lost worker, a frozen one, a
broker restart, a cancel.
"""

from __future__ import annotations

from typing import Any

from knowledge_assets.instance.queues import QUEUE_OFFLINE

__all__ = ["celery_settings"]

_RETRY = {"max_retries": 30, "interval_start": 0, "interval_step": 0.5, "interval_max": 2}


def celery_settings() -> dict[str, Any]:
    """Everything but the URLs (``KNOWLEDGE_BROKER_URL`` serves as broker and result backend)."""
    return {
        # One run per pool child, and a busy worker reserves nothing more: with prefetch 1 and
        # early ack a busy worker still took the next run, which then waited behind the running
        # one (or froze with it under SIGSTOP) while another worker was idle (measured).
        "worker_prefetch_multiplier": 1,
        "worker_disable_prefetch": True,
        # Ack on receipt. Recovering a lost worker's run is Dagster's job (lease -> FAILURE ->
        # from-failure retry): a re-delivered message would only be refused as a duplicate run,
        # and the Redis transport re-delivers a run outliving visibility_timeout while its
        # worker lives.
        "task_acks_late": False,
        "broker_transport_options": {
            "visibility_timeout": 600,
            "socket_keepalive": True,
            "health_check_interval": 10,
            "max_retries": 20,
            "interval_start": 0,
            "interval_step": 0.5,
            "interval_max": 2,
        },
        # The daemon's publish rides out a broker restart: Celery's default retry gave up after
        # ~0.6 s and the run coordinator then failed the run while dequeuing it (measured, 7 s
        # Valkey restart).
        "task_publish_retry": True,
        "task_publish_retry_policy": _RETRY,
        "broker_connection_retry": True,
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,
        # The result backend is asked only whether a task has ended: retry through a restart.
        "result_backend_always_retry": True,
        "result_backend_max_retries": 30,
        "result_backend_transport_options": {
            "retry_policy": {**_RETRY, "max_retries": 20},
            "socket_keepalive": True,
            "health_check_interval": 10,
        },
        "redis_socket_keepalive": True,
        "redis_backend_health_check_interval": 10,
        "result_expires": 7 * 24 * 3600,
        "result_extended": True,
        "task_track_started": True,
        "task_default_queue": QUEUE_OFFLINE,
        "task_create_missing_queues": True,
        "worker_hijack_root_logger": False,
        "worker_send_task_events": False,
        # Recycle a child only if it leaks past 3 GB resident: a new child is forked warm anyway.
        "worker_max_memory_per_child": 3_000_000,
    }
