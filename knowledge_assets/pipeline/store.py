"""The graph store in PostgreSQL: each batch's contribution applied and retracted whole."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from knowledge_assets.db import tables as t
from knowledge_assets.pipeline.lifecycle import apply
from knowledge_assets.pipeline.lifecycle.apply import IngestOutcome, Recompute
from knowledge_assets.pipeline.lifecycle.content import BatchContent
from knowledge_assets.pipeline.lifecycle.fence import Fence, StaleAttempt
from knowledge_assets.pipeline.models import ValidatedGraph

__all__ = ["Fence", "GraphStore", "StaleAttempt"]


class GraphStore:
    """Applies batches and deletions to the graph tables and reads them back for exports."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def ingest(
        self,
        content: BatchContent,
        graph: ValidatedGraph,
        recompute: Recompute,
        fence: Fence | None = None,
    ) -> IngestOutcome:
        """Apply the batch's live documents in one transaction (``lifecycle.apply.ingest``).

        A ``fence`` is checked inside the transaction before any write: a stale attempt (an
        orphaned process of a run that was retried) raises ``StaleAttempt`` and writes nothing.
        """
        return apply.ingest(self.engine, content, graph, recompute, fence)

    def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every graph row, sorted, without timestamps: for comparing two stores exactly."""
        result: dict[str, list[tuple[Any, ...]]] = {}
        with self.engine.connect() as connection:
            for table in t.GRAPH_TABLES:
                columns = [c for c in table.columns if c.name != "created_at"]
                rows = connection.execute(sa.select(*columns).order_by(*table.primary_key))
                result[table.name] = [tuple(map(_comparable, row)) for row in rows]
        return result

    def counts(self) -> dict[str, int]:
        """Row count of every graph table."""
        with self.engine.connect() as connection:
            return {
                table.name: connection.execute(
                    sa.select(sa.func.count()).select_from(table)
                ).scalar_one()
                for table in t.GRAPH_TABLES
            }


def _comparable(value: Any) -> Any:
    return json.dumps(value, sort_keys=True) if isinstance(value, dict | list) else value
