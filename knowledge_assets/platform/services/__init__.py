"""Services under ``KNOWLEDGE_HOME`` (PostgreSQL, Valkey, SeaweedFS from wheels), supervised."""
