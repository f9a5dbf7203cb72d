"""One router per module, assembled in ``api.app``."""
