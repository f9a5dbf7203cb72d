"""The one service the API and the CLI use to run batches: start, poll, events, interrupt, resume.

Every answer is derived from Dagster's run and event records (see ``state.py``); the orchestrator
keeps no state of its own, so any number of API replicas or CLI processes can use it at once.
Runs are submitted to the instance's run coordinator exactly as the webserver would, and the
daemon launches them. Callers never see the Dagster instance, the database engine or the batch
storage: everything they need is a method here.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterator, Mapping, Sequence

import dagster as dg
import sqlalchemy as sa

from knowledge_assets.db.engine import database_url, engine_for, get_engine
from knowledge_assets.defs import definitions
from knowledge_assets.defs.extraction.job import RUN_KIND_TAG, extract_batch
from knowledge_assets.defs.extraction.partitions import BATCHES
from knowledge_assets.defs.lifecycle.job import delete_documents
from knowledge_assets.defs.lifecycle.partitions import DELETIONS
from knowledge_assets.defs.registry.assets import canonical_entities
from knowledge_assets.instance.dagster_internals import PARTITION_NAME_TAG, CodeLocationRuns
from knowledge_assets.instance.home import LOCATION, PROJECT_ROOT, open_instance
from knowledge_assets.instance.launcher import LeasedCeleryRunLauncher
from knowledge_assets.instance.leases import LeaseBusy, LeaseStore
from knowledge_assets.instance.run_gate import ACTIVE_STATUSES, RERUN_TAG, SUBMITTED_STATUSES
from knowledge_assets.orchestration.commit_horizon import CommitHorizon
from knowledge_assets.orchestration.events import BatchEvent, EventId
from knowledge_assets.orchestration.feed import BatchEventFeed
from knowledge_assets.orchestration.lifecycle import (
    BatchesBusy,
    DeletionStatus,
    DocumentsBusy,
    Reprocess,
    StaleBatch,
    UnknownDeletion,
    active_batches,
    busy_batches,
    deletion_status,
    reprocess_status,
    stale_batches,
)
from knowledge_assets.orchestration.snapshot import INTERRUPTED_TAG, batch_status
from knowledge_assets.orchestration.state import BatchState, BatchStatus, check_transition
from knowledge_assets.pipeline.batches import (
    BatchManifest,
    BatchStorage,
    NothingAccepted,
    Source,
    UnknownBatchError,
)
from knowledge_assets.pipeline.documents import document_name
from knowledge_assets.pipeline.extractors.factory import extractor_info
from knowledge_assets.pipeline.inputs import PipelineInputs, pipeline_inputs
from knowledge_assets.pipeline.lifecycle.requests import UnknownDocuments, request_deletion
from knowledge_assets.pipeline.lifecycle.versions import (
    contributing_batches,
    deleted_by,
    register_manifest,
)
from knowledge_assets.pipeline.models import DocumentInput, DocumentRejection
from knowledge_assets.pipeline.object_store import storage_root
from knowledge_assets.pipeline.ontology import load_ontology
from knowledge_assets.pipeline.progress import STAGES
from knowledge_assets.settings import Settings

__all__ = [
    "BatchTimeout",
    "BatchesBusy",
    "DocumentsBusy",
    "NothingAccepted",
    "Orchestrator",
    "UnknownBatchError",
    "UnknownDeletion",
    "UnknownDocuments",
]

REPROCESS_TAG = "knowledge/reprocess"


class BatchTimeout(TimeoutError):
    """``wait`` gave up before the batch reached Complete or Failed."""


class Orchestrator:
    """Batches by id on one Dagster instance; safe to share between threads of one process."""

    def __init__(self, instance: dg.DagsterInstance, settings: Settings) -> None:
        self._instance = instance
        self.settings = settings
        self._engine: sa.Engine = get_engine(settings)
        self._storage = BatchStorage(storage_root(settings))
        self._runs_of_job = CodeLocationRuns(
            instance,
            module=definitions.__name__,
            location=LOCATION,
            job=extract_batch.name,
            working_directory=PROJECT_ROOT,
        )

    @classmethod
    @contextlib.contextmanager
    def for_settings(cls, settings: Settings) -> Iterator[Orchestrator]:
        """The orchestrator of the platform that ``knowledge up`` runs under the same home."""
        with open_instance(settings, database_url(settings)) as instance:
            orchestrator = cls(instance, settings)
            try:
                yield orchestrator
            finally:
                orchestrator.close()

    def close(self) -> None:
        """Release the in-process workspace."""
        self._runs_of_job.close()

    # -- submitting -------------------------------------------------------------------------

    def submit(
        self,
        items: Sequence[DocumentInput],
        refused: Sequence[DocumentRejection] = (),
        source: Source = "python",
    ) -> BatchStatus:
        """Stage documents as a batch and start it; the same submission gives the same batch.

        ``refused`` are documents refused before they could be read (e.g. unreadable files):
        they are part of the batch and its status names them. A submission whose every document
        is refused raises ``NothingAccepted``: nothing is staged or queued.
        """
        return self.start(self.stage(items, refused, source).batch_id)

    def stage(
        self,
        items: Sequence[DocumentInput],
        refused: Sequence[DocumentRejection] = (),
        source: Source = "python",
    ) -> BatchManifest:
        """Store the documents as a batch (content-addressed) without starting it.

        Its documents become versions now, in the order of submissions (``lifecycle.versions``).
        """
        ontology = load_ontology(self.settings.ontology)
        manifest = self._storage.stage(
            items,
            max_bytes=self.settings.max_document_bytes,
            ontology_hash=ontology.hash,
            extractor=extractor_info(self.settings, ontology),
            refused=refused,
            source=source,
        )
        with self._engine.begin() as connection:
            register_manifest(connection, manifest, self._storage)
        return manifest

    def start(self, batch_id: str) -> BatchStatus:
        """Start a staged batch, unless it has a run already: then answer its status.

        Two callers starting the same batch at once (API replicas, the inbox sensor) both get
        here; the instance's run coordinator admits one run and deletes the other
        (``instance/run_gate.py``), so the check below only saves work.
        """
        self._storage.manifest(batch_id)  # UnknownBatchError for a batch never staged
        if not self._runs(batch_id):
            if not self._instance.has_dynamic_partition(BATCHES, batch_id):
                self._instance.add_dynamic_partitions(BATCHES, [batch_id])
            self._runs_of_job.submit_new({PARTITION_NAME_TAG: batch_id})
        return self.poll(batch_id)

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
        """The batch's state, stage, counts, cost, errors, runs and whether it is stale."""
        manifest = self._storage.manifest(batch_id)
        records = self._run_records(batch_id)
        return batch_status(self._instance, self._engine, manifest, records, self.inputs)

    @functools.cached_property
    def inputs(self) -> PipelineInputs:
        """The configured inputs' fingerprints (what a batch is stale against)."""
        return pipeline_inputs(self.settings, load_ontology(self.settings.ontology))

    def run_ids(self, batch_id: str) -> list[str]:
        """Every run of the batch, oldest first (retries included)."""
        return [run.run_id for run in self._runs(batch_id)]

    def list_batches(self, offset: int = 0, limit: int = 50) -> list[BatchStatus]:
        """Staged batches, newest first."""
        ids = self._storage.batch_ids_newest_first()[offset : offset + limit]
        statuses = []
        for batch_id in ids:
            with contextlib.suppress(UnknownBatchError):
                statuses.append(self.poll(batch_id))
        return statuses

    def event_feed(self, batch_id: str) -> BatchEventFeed:
        """A reader of the batch's events, polled up to a commit horizon (see ``feed.py``)."""
        return BatchEventFeed(self._instance, self.run_ids, batch_id)

    def commit_horizon(self) -> CommitHorizon:
        """A horizon over the event log: ids below it are final (see ``commit_horizon.py``)."""
        url = database_url(self.settings)
        return CommitHorizon(engine_for(url), gap_timeout_s=self.settings.api_stream_gap_timeout_s)

    def events(
        self,
        batch_id: str,
        after: EventId | None = None,
        poll_s: float = 0.2,
        sleep: Callable[[float], None] = time.sleep,
    ) -> Iterator[BatchEvent]:
        """The batch's events after ``after``, as they happen, until its terminal event.

        The same events, with the same ids, as the API's SSE stream. Raises
        ``UnknownBatchError`` for a batch never staged.
        """
        self._storage.manifest(batch_id)
        feed, horizon = self.event_feed(batch_id), self.commit_horizon()
        while True:
            poll = feed.poll(horizon.advance())
            for event in poll.events:
                if after is None or EventId.parse(event.id) > after:
                    yield event
            if poll.finished:
                return
            if not poll.more:
                sleep(poll_s)

    def health(self) -> dict[str, str]:
        """Whether the graph store and Dagster's storage answer: ``ok`` or the error's name."""
        checks = {
            "database": _probe(lambda: _ping(self._engine)),
            "dagster": _probe(self._instance.get_runs_count),
        }
        return checks

    def daemon_alive(self, within_s: float = 60.0) -> bool:
        """Whether a Dagster daemon of this instance sent a heartbeat in the last ``within_s``."""
        heartbeats = self._instance.get_daemon_heartbeats()
        newest = max((h.timestamp for h in heartbeats.values()), default=0.0)
        return time.time() - newest <= within_s

    # -- control ----------------------------------------------------------------------------

    def interrupt(self, batch_id: str, timeout_s: float = 30.0) -> BatchStatus:
        """Terminate the batch's active run and return once its worker is done with it.

        Dagster's cancellation is asked first (the launcher revokes the run's Celery task);
        a worker still holding the run at the deadline has its task killed, so no extractor call
        happens after this returns. The batch stays resumable.
        """
        run = self._latest(batch_id)
        if run is None or run.status not in ACTIVE_STATUSES:
            return self.poll(batch_id)
        self._instance.add_run_tags(run.run_id, {INTERRUPTED_TAG: "true"})
        self._instance.run_coordinator.cancel_run(run.run_id)
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
        # The gate admits this only as the retry of the batch's newest run, once.
        self._runs_of_job.submit_retry(run, {INTERRUPTED_TAG: "false"})
        return self.poll(batch_id)

    def rerun(self, batch_id: str) -> BatchStatus:
        """Materialise every stage of a batch again (cache hits only; writes nothing new).

        For operators who want to prove a batch is settled, or re-check it after a code fix.
        A batch with an active run is left alone.
        """
        self._storage.manifest(batch_id)
        latest = self._latest(batch_id)
        if latest is None or latest.status not in ACTIVE_STATUSES:
            # The gate refuses a second run of a batch unless it is marked as a rerun.
            self._runs_of_job.submit_new({PARTITION_NAME_TAG: batch_id, RERUN_TAG: "true"})
        return self.poll(batch_id)

    # -- deleting and reprocessing ------------------------------------------------------------

    def delete(self, names: Sequence[str]) -> DeletionStatus:
        """Delete documents by id (their names as submitted), as a run of ``delete_documents``.

        Asking again for the same documents gives the same deletion; for documents deleted
        before, that earlier deletion. Raises ``UnknownDocuments`` for a name never submitted
        and ``DocumentsBusy`` while a batch holding one of them is queued or running.
        """
        wanted = sorted({document_name(n) for n in names})
        busy = busy_batches(self._instance, self._storage, wanted)
        if busy:
            raise DocumentsBusy(busy)
        request = request_deletion(self._engine, wanted)
        target = request.latest
        assert target is not None  # every name is known, so it is deleted now or was before
        # Two callers asking at once both get here; the run gate (``instance/run_gate.py``)
        # admits one run per deletion partition, as per batch, so the check only saves work.
        if request.deletion_id is not None and not self._deletion_runs(target):
            if not self._instance.has_dynamic_partition(DELETIONS, target):
                self._instance.add_dynamic_partitions(DELETIONS, [target])
            self._runs_of_job.submit_new(
                {PARTITION_NAME_TAG: target}, job_name=delete_documents.name
            )
        return self.deletion(target, earlier=request.earlier)

    def deletion(
        self, deletion_id: str, earlier: Mapping[str, str] | None = None
    ) -> DeletionStatus:
        """A deletion's state, documents, runs and counts."""
        with self._engine.connect() as connection:
            names = sorted(deleted_by(connection, deletion_id))
        if not names:
            raise UnknownDeletion(deletion_id)
        runs = self._deletion_runs(deletion_id)
        return deletion_status(self._instance, deletion_id, names, runs, earlier)

    def wait_deletion(
        self, deletion_id: str, timeout_s: float = 600.0, poll_s: float = 0.5
    ) -> DeletionStatus:
        """Block until the deletion is Complete or Failed."""
        deadline = time.monotonic() + timeout_s
        while True:
            status = self.deletion(deletion_id)
            if status.state.terminal:
                return status
            if time.monotonic() > deadline:
                raise BatchTimeout(
                    f"deletion {deletion_id} still {status.state} after {timeout_s:.0f} s"
                )
            time.sleep(poll_s)

    def stale(self) -> list[StaleBatch]:
        """Batches in the graph made under other inputs than the configured ones, and how.

        Batches queued or running are left out: they run under the current inputs anyway.
        """
        with self._engine.connect() as connection:
            present = contributing_batches(connection)
        staged = [b for b in present if self._storage.manifest_path(b).is_file()]
        busy = active_batches(self._instance, set(staged))
        return stale_batches(self._instance, [b for b in staged if b not in busy], self.inputs)

    def reprocess(self, batch_ids: Sequence[str]) -> Reprocess:
        """Re-materialise the batches (then the registry) as one Dagster backfill.

        Raises ``UnknownBatchError`` for a batch never staged and ``BatchesBusy`` for one with
        a run queued or running.
        """
        for batch_id in batch_ids:
            self._storage.manifest(batch_id)
        busy = active_batches(self._instance, set(batch_ids))
        if busy:
            raise BatchesBusy(busy)
        backfill_id = self._runs_of_job.submit_backfill(
            partitions=sorted(batch_ids),
            assets=[*STAGES, canonical_entities.key.to_user_string()],
            # Each batch already has a run: the run gate admits another only as a rerun.
            tags={RUN_KIND_TAG: "extraction", REPROCESS_TAG: "true", RERUN_TAG: "true"},
            title=f"reprocess {len(batch_ids)} stale batch(es)",
        )
        return reprocess_status(self._instance, backfill_id, sorted(batch_ids))

    def reprocess_status(self, backfill_id: str) -> Reprocess:
        """A reprocessing backfill's state and runs."""
        return reprocess_status(self._instance, backfill_id)

    def wait_reprocess(
        self, backfill_id: str, timeout_s: float = 3600.0, poll_s: float = 1.0
    ) -> Reprocess:
        """Block until the reprocessing backfill has ended."""
        deadline = time.monotonic() + timeout_s
        while True:
            status = self.reprocess_status(backfill_id)
            if status.finished:
                return status
            if time.monotonic() > deadline:
                raise BatchTimeout(f"backfill {backfill_id} still {status.state}")
            time.sleep(poll_s)

    # -- internals --------------------------------------------------------------------------

    def _deletion_runs(self, deletion_id: str) -> list[dg.DagsterRun]:
        """The deletion's submitted runs, oldest first (NOT_STARTED ones are no attempts)."""
        runs = self._instance.get_runs(
            dg.RunsFilter(
                job_name=delete_documents.name,
                tags={PARTITION_NAME_TAG: deletion_id},
                statuses=SUBMITTED_STATUSES,
            )
        )
        return list(reversed(runs))

    def _runs(self, batch_id: str) -> list[dg.DagsterRun]:
        return [record.dagster_run for record in self._run_records(batch_id)]

    def _run_records(self, batch_id: str) -> list[dg.RunRecord]:
        """The batch's submitted runs with their start and end times, oldest first.

        A run still NOT_STARTED is being created (or was refused by the gate a moment later, or
        its creator died): it is no attempt of the batch.
        """
        records = self._instance.get_run_records(
            dg.RunsFilter(
                job_name=extract_batch.name,
                tags={PARTITION_NAME_TAG: batch_id},
                statuses=SUBMITTED_STATUSES,
            )
        )
        return list(reversed(records))

    def _latest(self, batch_id: str) -> dg.DagsterRun | None:
        runs = self._runs(batch_id)
        return runs[-1] if runs else None

    def _await_stopped(self, run_id: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            run = self._instance.get_run_by_id(run_id)
            if run is not None and run.is_finished and not self._worker_holds(run_id):
                return
            time.sleep(0.2)
        self._kill_worker(run_id)

    def _worker_holds(self, run_id: str) -> bool:
        """Whether a worker still executes the run: its lease is neither finished nor revoked."""
        lease = LeaseStore(self._engine).get(run_id)
        return lease is not None and not (lease.finished or lease.revoked or lease.expired)

    def _kill_worker(self, run_id: str) -> None:
        # Cancellation did not stop the worker in time: kill its task and record why.
        launcher = self._instance.run_launcher
        if isinstance(launcher, LeasedCeleryRunLauncher):
            launcher.kill(run_id)
        with contextlib.suppress(LeaseBusy):
            LeaseStore(self._engine).revoke(run_id, force=True)
        run = self._instance.get_run_by_id(run_id)
        if run is not None and not run.is_finished:
            self._instance.report_run_canceled(
                run, message="interrupted: the run's worker task was killed"
            )


def _ping(engine: sa.Engine) -> None:
    with engine.connect() as connection:
        connection.execute(sa.text("SELECT 1"))


def _probe(check: Callable[[], object]) -> str:
    try:
        check()
    except Exception as exc:  # any failure means not ready; the reason goes in the answer
        return f"error: {type(exc).__name__}"
    return "ok"
