"""The Dagster definitions only: assets, checks, job, partitions, sensors, resources, IO manager."""
