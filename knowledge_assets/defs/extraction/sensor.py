"""The inbox sensor: new files become a batch partition and its run, in one tick."""

import json
from collections.abc import Sequence

import dagster as dg

from knowledge_assets.defs.extraction.job import extract_batch
from knowledge_assets.defs.extraction.partitions import BATCHES
from knowledge_assets.defs.resources import KnowledgeResource
from knowledge_assets.pipeline.extractors.factory import extractor_info
from knowledge_assets.pipeline.inbox import Inbox
from knowledge_assets.pipeline.lifecycle.versions import register_manifest


@dg.sensor(
    job=extract_batch,
    minimum_interval_seconds=5,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def inbox_sensor(
    context: dg.SensorEvaluationContext, knowledge: KnowledgeResource
) -> dg.SensorResult | dg.SkipReason:
    """Stage settled inbox files as a batch, add its partition and request its run.

    The run key is the batch id, derived from content: if the daemon dies before this tick's
    cursor is saved, the next tick stages the same batch again and Dagster skips the repeated
    run key, so no batch ever runs twice. Files are archived one tick later, once the request is
    safely recorded.
    """
    settings = knowledge.settings()
    inbox = Inbox(settings.inbox_dir)
    pending: dict[str, list[str]] = json.loads(context.cursor) if context.cursor else {}
    for batch_id, names in pending.items():
        inbox.archive(batch_id, names)
    ontology = knowledge.ontology()
    scan = inbox.scan(
        knowledge.batches(),
        max_bytes=settings.max_document_bytes,
        ontology_hash=ontology.hash,
        extractor=extractor_info(settings, ontology),
    )
    for rejection in scan.rejected:
        context.log.error(f"inbox file refused ({rejection.code}): {rejection.reason}")
    if scan.manifest is None:
        return dg.SensorResult(cursor=json.dumps({}), skip_reason=_skip(scan.rejected))
    with knowledge.engine().begin() as connection:
        # Submitted now: the batch's documents take their place in the order of versions.
        register_manifest(connection, scan.manifest, knowledge.batches())
    batch_id = scan.manifest.batch_id
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=batch_id, partition_key=batch_id)],
        dynamic_partitions_requests=[
            dg.AddDynamicPartitionsRequest(partitions_def_name=BATCHES, partition_keys=[batch_id])
        ],
        cursor=json.dumps({batch_id: scan.files}),
    )


def _skip(rejected: Sequence[object]) -> str:
    return f"refused {len(rejected)} file(s)" if rejected else "no new settled files in the inbox"
