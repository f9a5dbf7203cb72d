"""Bearer-token authentication, and short-lived signed tokens for ``EventSource`` URLs.

A browser's ``EventSource`` cannot send an ``Authorization`` header, and the API token must never
appear in a URL (URLs end up in logs and histories). So a client holding the API token asks
``POST /auth/stream-token`` for a token that is signed with the API token, is good only for
opening event streams and expires after ``KNOWLEDGE_API_STREAM_TOKEN_TTL_S`` seconds; it passes
that one as ``?access_token=``. Nothing is stored server-side: any API process holding the same
API token can verify it, so a restarted or second API process accepts it too.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import re
import time

from pydantic import SecretStr

from api.errors import ApiError

__all__ = ["Principal", "TokenAuthority"]

_STREAM_SCOPE = "events"
# ASCII digits only, and no more than a Unix time needs: str.isdigit() accepts "²",
# which int() then refuses, and a 5,000-digit expiry costs int() real work.
_EXPIRY = re.compile(r"[0-9]{1,12}")


class Principal(str):
    """Who is calling: a stable, non-secret fingerprint of the credential's API token."""


class TokenAuthority:
    """Checks bearer tokens and issues and checks signed stream tokens."""

    def __init__(self, token: SecretStr, stream_ttl_s: int) -> None:
        self._secret = token.get_secret_value().encode()
        self._ttl_s = stream_ttl_s
        self.principal = Principal(hashlib.sha256(self._secret).hexdigest()[:16])

    def check_bearer(self, authorization: str | None) -> Principal:
        """The caller, if the ``Authorization`` header carries the API token; else 401."""
        scheme, _, value = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not value:
            raise _unauthorized(
                "missing bearer token (Authorization: Bearer <KNOWLEDGE_API_TOKEN>)"
            )
        if not hmac.compare_digest(value.strip().encode(), self._secret):
            raise _unauthorized("invalid bearer token")
        return self.principal

    def issue_stream_token(self, now: float | None = None) -> tuple[str, int]:
        """A signed stream token and its lifetime in seconds.

        The expiry is rounded up to a whole second, so a token lives at least its lifetime.
        """
        expires = math.ceil((now if now is not None else time.time()) + self._ttl_s)
        return f"{expires}.{self._sign(expires)}", self._ttl_s

    def check_stream_token(self, token: str, now: float | None = None) -> Principal:
        """The caller, if ``token`` is a stream token we signed and it has not expired."""
        expires_text, _, signature = token.partition(".")
        if _EXPIRY.fullmatch(expires_text) is None or not hmac.compare_digest(
            signature.encode(errors="replace"), self._sign(int(expires_text)).encode()
        ):
            raise _unauthorized("invalid stream token")
        if int(expires_text) < (now if now is not None else time.time()):
            raise _unauthorized("stream token expired: ask POST /auth/stream-token for a new one")
        return self.principal

    def _sign(self, expires: int) -> str:
        mac = hmac.new(self._secret, f"{_STREAM_SCOPE}:{expires}".encode(), hashlib.sha256)
        return base64.urlsafe_b64encode(mac.digest()).decode().rstrip("=")


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})
