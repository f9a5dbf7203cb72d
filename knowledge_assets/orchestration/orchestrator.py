"""The one service the API and the CLI use to run batches: start, wait, poll, interrupt, resume.

Every answer is derived from Dagster's run and event records (see ``state.py``); the orchestrator
keeps no state of its own, so any number of API replicas or CLI processes can use it at once.
Runs are submitted to the instance's run coordinator exactly as the webserver would, and the
daemon launches them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator, Sequence

import dagster as dg
import sqlalchemy as sa
from dagster._core.execution.plan.resume_retry import ReexecutionStrategy
from dagster._core.storage.dagster_run import DagsterRun, DagsterRunStatus, RunsFilter
from dagster._core.storage.tags import PARTITION_NAME_TAG
from dagster._core.utils import make_new_run_id

from knowledge_assets.db.engine import get_engine
from knowledge_assets.orchestration.instance import open_instance
from knowledge_assets.orchestration.liveness import run_worker_pid, worker_alive
from knowledge_assets.orchestration.snapshot import INTERRUPTED_TAG, batch_status
from knowledge_assets.orchestration.state import BatchState, BatchStatus, check_transition
from knowledge_assets.orchestration.workspace import JOB, Workspace
from knowledge_assets.partitions import BATCHES
from knowledge_assets.pipeline.batches import BatchStorage, UnknownBatchError
from knowledge_assets.pipeline.extractors.factory import extractor_info
from knowledge_assets.pipeline.models import DocumentInput
from knowledge_assets.pipeline.ontology import load_ontology
from knowledge_assets.settings import Settings

_ACTIVE = {
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
    DagsterRunStatus.CANCELING,
}


class BatchTimeout(TimeoutError):
    """``start_and_wait`` gave up before the batch reached Complete or Failed."""


class Orchestrator:
    """Batches by id on one Dagster instance; safe to share between threads of one process."""

    def __init__(self, instance: dg.DagsterInstance, settings: Settings) -> None:
        self.instance = instance
        self.settings = settings
        self.engine: sa.Engine = get_engine(settings)
        self.storage = BatchStorage(settings.storage_dir)
        self._workspace = Workspace(instance)

    @classmethod
    @contextlib.contextmanager
    def for_settings(cls, settings: Settings) -> Iterator[Orchestrator]:
        """The orchestrator of the platform that ``knowledge up`` runs under the same home."""
        with open_instance(settings) as instance:
            orchestrator = cls(instance, settings)
            try:
                yield orchestrator
            finally:
                orchestrator.close()

    def close(self) -> None:
        """Release the in-process workspace."""
        self._workspace.close()

    # -- submitting -------------------------------------------------------------------------

    def submit(self, items: Sequence[DocumentInput]) -> BatchStatus:
        """Stage documents as a batch and start it; the same content gives the same batch."""
        ontology = load_ontology(self.settings.ontology)
        manifest = self.storage.stage(
            items,
            max_bytes=self.settings.max_document_bytes,
            ontology_hash=ontology.hash,
            extractor=extractor_info(self.settings, ontology),
        )
        return self.start(manifest.batch_id)

    def start(self, batch_id: str) -> BatchStatus:
        """Start a staged batch, unless it has a run already: then answer its status."""
        self.storage.manifest(batch_id)  # UnknownBatchError for a batch never staged
        with self._batch_lock(batch_id):
            if not self._runs(batch_id):
                if not self.instance.has_dynamic_partition(BATCHES, batch_id):
                    self.instance.add_dynamic_partitions(BATCHES, [batch_id])
                self._submit_new_run(batch_id)
        return self.poll(batch_id)

    def start_and_wait(
        self, batch_id: str, timeout_s: float = 600.0, poll_s: float = 0.5
    ) -> BatchStatus:
        """Start the batch and block until it is Complete or Failed (retries included)."""
        self.start(batch_id)
        return self.wait(batch_id, timeout_s, poll_s)

    def wait(self, batch_id: str, timeout_s: float = 600.0, poll_s: float = 0.5) -> BatchStatus:
        """Block until the batch is Complete or Failed; every observed move must be legal."""
        deadline = time.monotonic() + timeout_s
        seen: BatchState | None = None
        while True:
            status = self.poll(batch_id)
            if seen is not None:
                check_transition(seen, status.state)
            seen = status.state
            if status.state.terminal:
                return status
            if time.monotonic() > deadline:
                raise BatchTimeout(f"batch {batch_id} still {status.state} after {timeout_s:.0f} s")
            time.sleep(poll_s)

    # -- observing --------------------------------------------------------------------------

    def poll(self, batch_id: str) -> BatchStatus:
        """The batch's state, stage, counts, errors and runs."""
        manifest = self.storage.manifest(batch_id)
        return batch_status(self.instance, self.engine, manifest, self._runs(batch_id))

    def run_ids(self, batch_id: str) -> list[str]:
        """Every run of the batch, oldest first (retries included)."""
        return [run.run_id for run in self._runs(batch_id)]

    def list_batches(self, offset: int = 0, limit: int = 50) -> list[BatchStatus]:
        """Staged batches, newest first."""
        ids = self.storage.batch_ids_newest_first()[offset : offset + limit]
        statuses = []
        for batch_id in ids:
            with contextlib.suppress(UnknownBatchError):
                statuses.append(self.poll(batch_id))
        return statuses

    # -- control ----------------------------------------------------------------------------

    def interrupt(self, batch_id: str, timeout_s: float = 30.0) -> BatchStatus:
        """Terminate the batch's active run and return once its worker has stopped.

        Dagster's cancellation is asked first; a worker still alive at the deadline is killed,
        so no extractor call happens after this returns. The batch stays resumable.
        """
        run = self._latest(batch_id)
        if run is None or run.status not in _ACTIVE:
            return self.poll(batch_id)
        self.instance.add_run_tags(run.run_id, {INTERRUPTED_TAG: "true"})
        self.instance.run_coordinator.cancel_run(run.run_id)
        self._await_stopped(run.run_id, timeout_s)
        return self.poll(batch_id)

    def resume(self, batch_id: str) -> BatchStatus:
        """Re-execute the batch from its failure, keeping its partition; a no-op otherwise."""
        status = self.poll(batch_id)
        run = self._latest(batch_id)
        if run is None:
            return self.start(batch_id)
        if status.state != BatchState.FAILED:
            return status
        with self._batch_lock(batch_id):
            latest = self._latest(batch_id)
            if latest is not None and latest.run_id == run.run_id:
                self._submit_retry(run)
        return self.poll(batch_id)

    def rerun(self, batch_id: str) -> BatchStatus:
        """Materialise every stage of a batch again (cache hits only; writes nothing new).

        For operators who want to prove a batch is settled, or re-check it after a code fix.
        A batch with an active run is left alone.
        """
        self.storage.manifest(batch_id)
        with self._batch_lock(batch_id):
            latest = self._latest(batch_id)
            if latest is None or latest.status not in _ACTIVE:
                self._submit_new_run(batch_id)
        return self.poll(batch_id)

    # -- internals --------------------------------------------------------------------------

    def _runs(self, batch_id: str) -> list[DagsterRun]:
        runs = self.instance.get_runs(RunsFilter(job_name=JOB, tags={PARTITION_NAME_TAG: batch_id}))
        return list(reversed(runs))

    def _latest(self, batch_id: str) -> DagsterRun | None:
        runs = self.instance.get_runs(
            RunsFilter(job_name=JOB, tags={PARTITION_NAME_TAG: batch_id}), limit=1
        )
        return runs[0] if runs else None

    @contextlib.contextmanager
    def _batch_lock(self, batch_id: str) -> Iterator[None]:
        # Two API replicas starting the same batch at once: the second waits, then sees the run.
        with self.engine.begin() as connection:
            connection.execute(
                sa.text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
                {"key": f"knowledge-batch:{batch_id}"},
            )
            yield

    def _submit_new_run(self, batch_id: str) -> DagsterRun:
        request = self._workspace.request()
        location = self._workspace.location(request)
        job = self._workspace.job(request)
        plan = location.get_execution_plan(
            job, run_config={}, step_keys_to_execute=None, known_state=None, instance=self.instance
        )
        run = self.instance.create_run(
            job_name=JOB,
            run_id=make_new_run_id(),
            run_config={},
            status=DagsterRunStatus.NOT_STARTED,
            tags={**job.tags, PARTITION_NAME_TAG: batch_id},
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

    def _submit_retry(self, parent: DagsterRun) -> DagsterRun:
        request = self._workspace.request()
        run = self.instance.create_reexecuted_run(
            request_context=request,
            parent_run=parent,
            code_location=self._workspace.location(request),
            remote_job=self._workspace.job(request),
            strategy=ReexecutionStrategy.FROM_FAILURE,
            use_parent_run_tags=True,
            extra_tags={INTERRUPTED_TAG: "false"},
        )
        return self.instance.submit_run(run.run_id, request)

    def _await_stopped(self, run_id: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            run = self.instance.get_run_by_id(run_id)
            if run is not None and run.is_finished and not self._worker_running(run_id):
                return
            time.sleep(0.2)
        self._kill_worker(run_id)

    def _worker_running(self, run_id: str) -> bool:
        found = run_worker_pid(self.instance, run_id)
        return found is not None and worker_alive(*found)

    def _kill_worker(self, run_id: str) -> None:
        # Cancellation did not stop the worker in time: stop it for good and record why.
        found = run_worker_pid(self.instance, run_id)
        if found is not None and worker_alive(*found):
            with contextlib.suppress(ProcessLookupError):
                os.kill(found[0], signal.SIGKILL)
        run = self.instance.get_run_by_id(run_id)
        if run is not None and not run.is_finished:
            self.instance.report_run_canceled(run, message="interrupted: the run worker was killed")
