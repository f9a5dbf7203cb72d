"""A stream token is accepted for its whole lifetime, and refused after it."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from api.errors import ApiError
from api.guards.auth import TokenAuthority


@pytest.mark.parametrize("issued_at", [100.0, 100.1, 100.9, 100.999])
def test_a_stream_token_is_accepted_for_its_whole_ttl_and_refused_after(issued_at: float) -> None:
    authority = TokenAuthority(SecretStr("x" * 20), stream_ttl_s=1)
    token, ttl = authority.issue_stream_token(now=issued_at)
    assert ttl == 1
    authority.check_stream_token(token, now=issued_at + 0.99)
    with pytest.raises(ApiError, match="expired"):
        authority.check_stream_token(token, now=issued_at + 2.0)
