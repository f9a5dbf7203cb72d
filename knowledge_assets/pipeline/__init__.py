"""The extraction pipeline as plain Python: no Dagster import anywhere below this package."""
