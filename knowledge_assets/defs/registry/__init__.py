"""Cross-batch resolution: the canonical-entity registry asset."""
