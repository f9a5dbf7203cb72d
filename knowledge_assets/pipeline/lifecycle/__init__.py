"""A living graph: document versions, each batch's contribution, deletions and forgetting."""
