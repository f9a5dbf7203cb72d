"""Asset checks: the red lights a person wants in the UI for a batch."""

from __future__ import annotations

from collections import Counter

import dagster as dg

from knowledge_assets.pipeline.models import ResolvedGraph, ValidatedGraph
from knowledge_assets.pipeline.stages import PreparedDocuments

SPANS_MATCH = "mention_spans_match"
NO_VIOLATIONS = "no_shacl_violations"
NO_QUARANTINE = "nothing_quarantined"


def span_check(documents: PreparedDocuments, graph: ResolvedGraph) -> dg.AssetCheckResult:
    """Every mention's text must equal its document's text at its span."""
    texts = {d.id: d.text for d in documents.documents}
    bad = [m for m in graph.mentions if texts.get(m.document_id, "")[m.start : m.end] != m.text]
    return dg.AssetCheckResult(
        check_name=SPANS_MATCH,
        passed=not bad,
        metadata={"mentions": len(graph.mentions), "mismatched": len(bad)},
    )


def violation_check(graph: ValidatedGraph) -> dg.AssetCheckResult:
    """SHACL violations found in the batch's facts (they are quarantined, not lost)."""
    return dg.AssetCheckResult(
        check_name=NO_VIOLATIONS,
        passed=graph.violations == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"violations": graph.violations},
    )


def quarantine_check(graph: ValidatedGraph) -> dg.AssetCheckResult:
    """Anything held back: refused documents, failed chunks, invalid facts."""
    kinds = Counter(q.kind for q in graph.quarantined)
    return dg.AssetCheckResult(
        check_name=NO_QUARANTINE,
        passed=not graph.quarantined,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"quarantined": len(graph.quarantined), **{f"{k}s": n for k, n in kinds.items()}},
    )
