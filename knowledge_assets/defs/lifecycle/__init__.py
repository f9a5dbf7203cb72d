"""Deleting documents: the deletion asset, its partitions and job, and forgetting stored values."""
