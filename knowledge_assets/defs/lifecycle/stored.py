"""Forgetting deleted documents in the stored asset values of every batch that held them.

A batch's values are rewritten as a fresh run of its remaining documents would store them:
documents, chunks and extraction results are filtered, and the resolved and validated graphs
are computed again from them (entity names and aliases hold the deleted text too). The batch's
``documents`` asset leaves forgotten documents out when it runs again, so no later run can
bring them back.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from pydantic import BaseModel

from knowledge_assets.defs.io_manager import AssetValues
from knowledge_assets.defs.resources import KnowledgeResource
from knowledge_assets.pipeline import stages
from knowledge_assets.pipeline.models import ResolvedGraph, ValidatedGraph

__all__ = ["StoredForgetting", "chunk_hashes", "forget_stored"]


@dataclass
class StoredForgetting:
    """Stored values rewritten (``asset/partition``), and chunk hashes they held."""

    rewritten: list[str] = field(default_factory=list)


def _held(values: AssetValues, batch_id: str, names: Collection[str]) -> set[str]:
    """Ids of the named documents in the batch's stored ``documents`` value."""
    prepared = values.read_if_stored("documents", batch_id)
    if not isinstance(prepared, stages.PreparedDocuments):
        return set()
    return {d.id for d in prepared.documents if d.name in names}


def chunk_hashes(values: AssetValues, batch_id: str, names: Collection[str]) -> set[str]:
    """Hashes of the stored chunks of the named documents: their cache entries go too."""
    held = _held(values, batch_id, names)
    chunk_set = values.read_if_stored("chunks", batch_id)
    if not isinstance(chunk_set, stages.ChunkSet):
        return set()
    return {c.sha256 for c in chunk_set.chunks if c.document_id in held}


def forget_stored(
    values: AssetValues, batch_id: str, names: Collection[str], knowledge: KnowledgeResource
) -> StoredForgetting:
    """Rewrite the batch's stored values without the named documents."""
    done = StoredForgetting()
    held = _held(values, batch_id, names)
    prepared = values.read_if_stored("documents", batch_id)
    if not held or not isinstance(prepared, stages.PreparedDocuments):
        return done
    prepared = prepared.model_copy(
        update={"documents": tuple(d for d in prepared.documents if d.id not in held)}
    )
    values.write("documents", batch_id, prepared)
    done.rewritten.append(f"documents/{batch_id}")
    chunk_set = values.read_if_stored("chunks", batch_id)
    if not isinstance(chunk_set, stages.ChunkSet):
        return _drop_downstream(values, batch_id, done, "extractions")
    chunk_set = chunk_set.model_copy(
        update={"chunks": tuple(c for c in chunk_set.chunks if c.document_id not in held)}
    )
    values.write("chunks", batch_id, chunk_set)
    done.rewritten.append(f"chunks/{batch_id}")
    extractions = values.read_if_stored("extractions", batch_id)
    if not isinstance(extractions, stages.Extractions):
        return _drop_downstream(values, batch_id, done, "resolved_entities")
    kept = {c.id for c in chunk_set.chunks}
    extractions = extractions.model_copy(
        update={"results": tuple(r for r in extractions.results if r.chunk_id in kept)}
    )
    values.write("extractions", batch_id, extractions)
    done.rewritten.append(f"extractions/{batch_id}")
    settings = knowledge.settings()
    resolved = stages.resolve(
        batch_id,
        prepared,
        chunk_set,
        extractions,
        knowledge.ontology(),
        threshold=settings.resolution_threshold,
    )
    rewritten: tuple[tuple[str, BaseModel], ...] = (
        ("resolved_entities", resolved),
        ("validated_graph", _validated(resolved, knowledge)),
    )
    for asset, value in rewritten:
        if values.read_if_stored(asset, batch_id) is not None:
            values.write(asset, batch_id, value)
            done.rewritten.append(f"{asset}/{batch_id}")
    return done


def _validated(resolved: ResolvedGraph, knowledge: KnowledgeResource) -> ValidatedGraph:
    return stages.validate(resolved, knowledge.ontology(), knowledge.shapes())


def _drop_downstream(
    values: AssetValues, batch_id: str, done: StoredForgetting, first: str
) -> StoredForgetting:
    """Values downstream of a missing one cannot be rewritten: they are dropped instead."""
    order = ["extractions", "resolved_entities", "validated_graph"]
    for asset in order[order.index(first) :]:
        if values.drop(asset, batch_id):
            done.rewritten.append(f"{asset}/{batch_id} (dropped)")
    return done
