"""Cross-batch resolution: a persistent registry of canonical entities, merged batch by batch."""

from knowledge_assets.pipeline.registry.merge import (
    RegistryReport,
    canonical_of,
    merge_new_batches,
    pending_batches,
)
from knowledge_assets.pipeline.registry.replay import needs_replay, sync_registry, sync_registry_in
from knowledge_assets.pipeline.registry.split import rebuild_registry, split_entities, undo_merge

__all__ = [
    "RegistryReport",
    "canonical_of",
    "merge_new_batches",
    "needs_replay",
    "pending_batches",
    "rebuild_registry",
    "split_entities",
    "sync_registry",
    "sync_registry_in",
    "undo_merge",
]
