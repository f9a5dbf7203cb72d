"""Dagster instance plumbing: storage, run launcher, worker health, fencing, DAGSTER_HOME."""
