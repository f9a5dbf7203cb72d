"""The batch job: every per-batch asset of one partition, in one run."""

from __future__ import annotations

import dagster as dg

from knowledge_assets.assets.batch import BATCH_ASSETS
from knowledge_assets.partitions import batch_partitions

RUN_KIND_TAG = "knowledge/run"

# In-process executor: the steps form a chain, so a process per step buys no parallelism; it only
# costs a process start and a model load per step, and leaves step processes that can outlive a
# failed run. Here the run worker loads the model once, and a killed run worker takes its steps
# with it; op retries still re-run a failed step in the same run.
extract_batch = dg.define_asset_job(
    "extract_batch",
    selection=dg.AssetSelection.assets(*BATCH_ASSETS),
    partitions_def=batch_partitions,
    tags={RUN_KIND_TAG: "extraction"},
    op_retry_policy=dg.RetryPolicy(max_retries=2, delay=1.0, backoff=dg.Backoff.EXPONENTIAL),
    executor_def=dg.in_process_executor,
)
