"""The deletion partitions: one dynamic partition per deletion request."""

from __future__ import annotations

import dagster as dg

DELETIONS = "deletions"

deletion_partitions = dg.DynamicPartitionsDefinition(name=DELETIONS)
