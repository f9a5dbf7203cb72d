"""The batch partitions: one dynamic partition per batch id."""

from __future__ import annotations

import dagster as dg

BATCHES = "batches"

batch_partitions = dg.DynamicPartitionsDefinition(name=BATCHES)
