"""Dagster assets: thin wrappers around the pipeline's stage functions."""
