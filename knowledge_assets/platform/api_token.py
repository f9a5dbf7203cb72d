"""The API's bearer token: from ``KNOWLEDGE_API_TOKEN``, else kept in ``KNOWLEDGE_HOME/api_token``.

The platform never serves the API without a token. When none is configured, ``knowledge up``
generates one on the first start and reuses it afterwards, so clients keep working across
restarts; the file is readable by its owner only.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from knowledge_assets.files import write_atomic
from knowledge_assets.settings import MIN_TOKEN_CHARS, Settings

__all__ = ["ApiToken", "ensure_api_token"]


@dataclass(frozen=True)
class ApiToken:
    """The token and where it came from: ``environment``, ``file`` or ``generated``."""

    value: str
    source: str


def ensure_api_token(settings: Settings) -> ApiToken:
    """The configured token, the stored one, or a new one written to the token file."""
    if settings.api_token is not None:
        return ApiToken(settings.api_token.get_secret_value(), "environment")
    path = settings.api_token_file
    if path.is_file():
        stored = path.read_text(encoding="utf-8").strip()
        if len(stored) >= MIN_TOKEN_CHARS:
            return ApiToken(stored, "file")
    token = secrets.token_urlsafe(32)
    write_atomic(path, (token + "\n").encode("utf-8"), mode=0o600)
    return ApiToken(token, "generated")
