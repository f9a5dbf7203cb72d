"""No token reaches the API's log (issue 16, defect 10)."""

from __future__ import annotations

import time

import httpx

from tests.service.server import TOKEN, ApiServer, auth


def test_a_stream_token_in_the_url_is_redacted_in_the_access_log(bare: ApiServer) -> None:
    issued = httpx.post(f"{bare.url}/auth/stream-token", headers=auth()).json()["token"]
    url = f"{bare.url}/batches/b0123456789abcdef/events"
    assert httpx.get(url, params={"access_token": issued, "after": "5"}).status_code == 404
    time.sleep(0.5)  # the access line is written after the response
    log = bare.log_path.read_text(encoding="utf-8", errors="replace")
    assert "/batches/b0123456789abcdef/events?access_token=[redacted]&after=5" in log
    assert issued not in log
    assert issued.split(".")[1] not in log
    assert TOKEN not in log
