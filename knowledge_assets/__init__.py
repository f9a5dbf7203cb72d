"""knowledge-assets: durable document-to-knowledge-graph pipelines on Dagster and PostgreSQL."""

__version__ = "0.1.0"
