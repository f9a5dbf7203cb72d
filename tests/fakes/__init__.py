"""Real local stand-ins for external systems, used by tests instead of patching."""
