"""The FastAPI service: batches, progress streams and graph queries (see docs/ARCHITECTURE)."""
