"""The deletion job: one deletion request's partition, in one run."""

from __future__ import annotations

import dagster as dg

from knowledge_assets.defs.extraction.job import RUN_KIND_TAG
from knowledge_assets.defs.lifecycle.assets import document_deletions
from knowledge_assets.defs.lifecycle.partitions import deletion_partitions

delete_documents = dg.define_asset_job(
    "delete_documents",
    selection=dg.AssetSelection.assets(document_deletions),
    partitions_def=deletion_partitions,
    tags={RUN_KIND_TAG: "deletion"},
    # As extract_batch: one process, no op retries (run retries from failure resume a deletion).
    executor_def=dg.in_process_executor,
)
