"""Services started from PyPI wheels under ``KNOWLEDGE_HOME``: PostgreSQL, Valkey, SeaweedFS."""
