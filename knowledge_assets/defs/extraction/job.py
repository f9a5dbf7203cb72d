"""The batch job: every per-batch asset of one partition, in one run."""

from __future__ import annotations

import dagster as dg

from knowledge_assets.defs.extraction.assets import BATCH_ASSETS
from knowledge_assets.defs.extraction.partitions import batch_partitions
from knowledge_assets.instance.queues import EXTRACTION, RUN_KIND_TAG

__all__ = ["RUN_KIND_TAG", "extract_batch"]

extract_batch = dg.define_asset_job(
    "extract_batch",
    selection=dg.AssetSelection.assets(*BATCH_ASSETS),
    partitions_def=batch_partitions,
    tags={RUN_KIND_TAG: EXTRACTION},
    # No op retry policy: Dagster turns a termination request into a step retry when one is set
    # (dagster/_core/execution/plan/utils.py, measured: an interrupted extraction ran on to the
    # end). Transient failures are retried by run retries from failure (dagster.yaml) instead.
    # One process per run: the model loads once per run, not once per step, and no step process
    # can be orphaned by a dead run worker and write after a newer attempt started.
    executor_def=dg.in_process_executor,
)
