"""Database access: the embedded or external PostgreSQL server, engines and our own migrations."""
