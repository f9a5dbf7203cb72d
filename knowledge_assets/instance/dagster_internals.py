"""The one module that touches Dagster's private API (``dagster._…``), pinned to dagster 1.13.27.

Dagster offers no public way to do a few things the platform needs: create a partitioned run, a
from-failure re-execution or an asset backfill from a code location loaded in this process, read
the event log after
a storage id, subclass the run launcher's health-check types, open an instance on a database URL
known only at run time, and execute a launched run inside a warm Celery pool child (what
dagster-celery's own task and ``dagster api execute_run`` do). Every such name is imported here
and nowhere else; ``tests/test_dagster_internals.py`` pins the behaviour we rely on, so an
upgrade that changes it fails there first. Public names (``dagster.DagsterRun``, ``RunsFilter``,
…) are used directly everywhere else.
"""

from __future__ import annotations

import importlib
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import dagster as dg
import yaml
from dagster._config.config_schema import UserConfigSchema
from dagster._core.event_api import EventLogCursor
from dagster._core.events import EngineEventData
from dagster._core.execution.plan.resume_retry import ReexecutionStrategy
from dagster._core.instance.ref import InstanceRef
from dagster._core.launcher import CheckRunHealthResult, LaunchRunContext, WorkerStatus
from dagster._core.storage.event_log.base import EventLogConnection
from dagster._core.storage.tags import BACKFILL_ID_TAG, PARTITION_NAME_TAG, WILL_RETRY_TAG
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.utils import make_new_run_id
from dagster._grpc.types import ExecuteRunArgs
from dagster._serdes import ConfigurableClassData

__all__ = [
    "BACKFILL_ID_TAG",
    "DAGSTER_VERSION",
    "PARTITION_NAME_TAG",
    "RUN_RETRY_CURSOR_KEYS",
    "WILL_RETRY_TAG",
    "CheckRunHealthResult",
    "CodeLocationRuns",
    "ConfigurableClassData",
    "EngineEventData",
    "LaunchRunContext",
    "UserConfigSchema",
    "WorkerStatus",
    "backfill_state",
    "execute_run",
    "import_run_execution",
    "instance_on_database",
    "records_after",
    "run_id_of_task",
    "run_storage_of",
    "start_run_retry_cursors",
]

DAGSTER_VERSION = "1.13.27"
REPOSITORY = "__repository__"  # the repository a Definitions object becomes


def instance_on_database(home: Path, database_url: str) -> dg.DagsterInstance:
    """The instance of ``home/dagster.yaml`` with its storage pointed at ``database_url``.

    dagster.yaml reads the URL from ``KNOWLEDGE_DATABASE_URL`` (so a password never travels in a
    run worker's arguments); a process that learns the URL at run time (the embedded server)
    passes it here instead of writing it into its own environment. Dagster merges overrides
    shallowly, so the whole ``storage`` block is given, with only the URL changed.
    """
    config = yaml.safe_load((home / "dagster.yaml").read_text(encoding="utf-8")) or {}
    storage = config.get("storage", {})
    for block in storage.values():
        if isinstance(block, dict) and "postgres_url" in block.get("config", {}):
            block["config"]["postgres_url"] = database_url
    ref = InstanceRef.from_dir(str(home), overrides={"storage": storage})
    return dg.DagsterInstance.from_ref(ref)


# The run retry daemon (Dagster's EventLogConsumerDaemon) keeps one cursor per event type under
# these keys; with none it starts at the newest event and ignores every older one.
_RETRY_CURSOR_EVENTS = (dg.DagsterEventType.RUN_FAILURE, dg.DagsterEventType.RUN_SUCCESS)
RUN_RETRY_CURSOR_KEYS = frozenset(
    f"EVENT_LOG_CONSUMER_CURSOR-{event.value}" for event in _RETRY_CURSOR_EVENTS
)


def start_run_retry_cursors(instance: dg.DagsterInstance) -> None:
    """Give the run retry daemon its cursors now, if it has none yet.

    On a new instance the daemon's first iteration sets its cursors to the newest event and
    ignores older ones, so a run that failed before that iteration (a crash in a batch's first
    second, right after the platform started) was never retried. Setting them while the
    instance is prepared, before any run exists, makes every later failure count.
    """
    present = instance.daemon_cursor_storage.get_cursor_values(set(RUN_RETRY_CURSOR_KEYS))
    newest = str(instance.event_log_storage.get_maximum_record_id() or 0)
    missing = {key: newest for key in RUN_RETRY_CURSOR_KEYS if present.get(key) is None}
    if missing:
        instance.daemon_cursor_storage.set_cursor_values(missing)


def run_storage_of(instance: dg.DagsterInstance) -> object:
    """The run storage that dagster.yaml's ``storage:`` block built for ``instance``.

    An instance configured with a unified ``storage:`` wraps its run storage in a
    ``LegacyRunStorage`` that keeps the real one as ``_storage.run_storage``.
    """
    storage: object = instance.run_storage
    inner = getattr(storage, "_storage", None)
    return inner.run_storage if inner is not None else storage


def records_after(
    instance: dg.DagsterInstance, run_id: str, storage_id: int, limit: int
) -> EventLogConnection:
    """The run's event-log records with a storage id above ``storage_id``, oldest first.

    ``get_records_for_run`` takes only an opaque cursor string; ``EventLogCursor`` builds one
    from a storage id and is not exported.
    """
    cursor = EventLogCursor.from_storage_id(storage_id).to_string() if storage_id else None
    return instance.get_records_for_run(run_id, cursor=cursor, limit=limit)


def run_id_of_task(packed: Any) -> str:
    """The run id in dagster-celery's ``execute_job`` task argument (packed ``ExecuteRunArgs``)."""
    from dagster._serdes import unpack_value

    return str(unpack_value(packed, as_type=ExecuteRunArgs).run_id)


# Run execution is imported when used: storage and launcher classes load this module in every
# process of the platform, and only workers execute runs.


def import_run_execution() -> None:
    """Import what executing a run needs, so a warm worker's pool children skip it."""
    for module in ("dagster._cli.api", "dagster._core.execution.api"):
        importlib.import_module(module)


def execute_run(instance: dg.DagsterInstance, run_id: str) -> int:
    """Execute a launched run in this process, as ``dagster api execute_run`` would; exit code.

    Dagster's own run-worker body: it refuses a run that is not starting (a duplicate), records
    the process's pid, executes, and writes the run's end to the event log. 1 if the run failed.
    """
    from dagster._cli.api import _execute_run_command_body

    ignore: Callable[[Any], None] = lambda _event: None  # noqa: E731 - events are in the log
    return _execute_run_command_body(
        run_id=run_id, instance=instance, write_stream_fn=ignore, set_exit_code_on_failure=True
    )


def backfill_state(instance: dg.DagsterInstance, backfill_id: str) -> str | None:
    """A backfill's status (``REQUESTED``, ``COMPLETED_SUCCESS``, ``COMPLETED_FAILED``, ...)."""
    backfill = instance.get_backfill(backfill_id)
    return None if backfill is None else backfill.status.value


class CodeLocationRuns:
    """Runs of one job created from a code location loaded in this process.

    The location carries the name the daemon knows it by (``workspace.yaml``), so the runs are
    launched by the daemon from its own code server: this process only builds run records, the
    way the webserver does. Close it when done.
    """

    def __init__(
        self,
        instance: dg.DagsterInstance,
        *,
        module: str,
        location: str,
        job: str,
        working_directory: Path,
    ) -> None:
        from dagster._core.remote_origin import InProcessCodeLocationOrigin
        from dagster._core.workspace.context import WorkspaceProcessContext
        from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget

        origin = InProcessCodeLocationOrigin(
            LoadableTargetOrigin(
                executable_path=sys.executable,
                module_name=module,
                attribute="defs",
                working_directory=str(working_directory),
            ),
            location_name=location,
        )
        self.instance = instance
        self.location_name = location
        self.job_name = job
        self._process = WorkspaceProcessContext(instance, InProcessWorkspaceLoadTarget(origin))

    def submit_new(self, tags: Mapping[str, str], job_name: str | None = None) -> dg.DagsterRun:
        """Create a run of every step with ``tags`` (on top of the job's) and queue it.

        The run is of ``job_name`` if given, else of the job this object was made for.
        """
        request = self._process.create_request_context()
        location = request.get_code_location(self.location_name)
        name = job_name or self.job_name
        job = location.get_repository(REPOSITORY).get_full_job(name)
        plan = location.get_execution_plan(
            job, run_config={}, step_keys_to_execute=None, known_state=None, instance=self.instance
        )
        run = self.instance.create_run(
            job_name=name,
            run_id=make_new_run_id(),
            run_config={},
            status=dg.DagsterRunStatus.NOT_STARTED,
            tags={**job.tags, **tags},
            root_run_id=None,
            parent_run_id=None,
            step_keys_to_execute=plan.execution_plan_snapshot.step_keys_to_execute,
            execution_plan_snapshot=plan.execution_plan_snapshot,
            job_snapshot=job.job_snapshot,
            parent_job_snapshot=job.parent_job_snapshot,
            asset_selection=None,
            asset_check_selection=None,
            resolved_op_selection=None,
            op_selection=None,
            remote_job_origin=job.get_remote_origin(),
            job_code_origin=job.get_python_origin(),
            asset_graph=request.asset_graph,
        )
        return self.instance.submit_run(run.run_id, request)

    def submit_retry(self, parent: dg.DagsterRun, extra_tags: Mapping[str, str]) -> dg.DagsterRun:
        """Re-execute ``parent`` from its failure, keeping its tags (the partition too)."""
        request = self._process.create_request_context()
        location = request.get_code_location(self.location_name)
        run = self.instance.create_reexecuted_run(
            request_context=request,
            parent_run=parent,
            code_location=location,
            remote_job=location.get_repository(REPOSITORY).get_full_job(self.job_name),
            strategy=ReexecutionStrategy.FROM_FAILURE,
            use_parent_run_tags=True,
            extra_tags=dict(extra_tags),
        )
        return self.instance.submit_run(run.run_id, request)

    def submit_backfill(
        self,
        partitions: Sequence[str],
        assets: Sequence[str],
        tags: Mapping[str, str],
        title: str,
    ) -> str:
        """Request an asset backfill of ``assets`` for ``partitions``; the daemon launches it.

        It is what the UI's "Materialize" of selected partitions creates: the backfill daemon
        launches its runs through the run queue, each listed under the backfill in the UI.
        """
        from dagster._core.execution.backfill import PartitionBackfill
        from dagster._core.utils import make_new_backfill_id

        request = self._process.create_request_context()
        backfill = PartitionBackfill.from_asset_partitions(
            backfill_id=make_new_backfill_id(),
            asset_graph=request.asset_graph,
            partition_names=list(partitions),
            asset_selection=[dg.AssetKey(asset) for asset in assets],
            backfill_timestamp=time.time(),
            tags=dict(tags),
            dynamic_partitions_store=self.instance,
            all_partitions=False,
            title=title,
            description=None,
            run_config=None,
        )
        self.instance.add_backfill(backfill)
        return backfill.backfill_id

    def close(self) -> None:
        """Release the in-process workspace."""
        self._process.__exit__(None, None, None)
