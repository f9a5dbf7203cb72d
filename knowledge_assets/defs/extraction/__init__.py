"""Per-batch extraction: stage assets, their checks, the batch job, partitions, inbox sensor."""
