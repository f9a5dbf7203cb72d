"""Errors whose message is complete for a user."""

from __future__ import annotations


class UserFacingError(Exception):
    """An error whose message is complete for a user: printed without a traceback."""
