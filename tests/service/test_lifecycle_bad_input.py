"""Bad requests to the lifecycle routes: clear codes, nothing registered, nothing queued."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.service.server import ApiServer, auth


def call(server: ApiServer, method: str, path: str, **options: object) -> httpx.Response:
    return httpx.request(method, f"{server.url}{path}", headers=auth(), timeout=60, **options)


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("DELETE", "/documents/never-submitted.txt", None, 404, "document_not_found"),
        ("DELETE", "/documents/folder%2F..%2F..%2Fetc%2Fpasswd", None, 404, "document_not_found"),
        ("GET", "/deletions/d0000000000000000", None, 404, "deletion_not_found"),
        ("GET", "/deletions/not-an-id", None, 422, "invalid_request"),
        ("POST", "/reprocess", {}, 422, "invalid_request"),
        ("POST", "/reprocess", {"batches": ["b1"], "stale": True}, 422, "invalid_request"),
        ("POST", "/reprocess", {"batches": ["b0000000000000000"]}, 404, "batch_not_found"),
        ("POST", "/reprocess", {"stale": True}, 409, "nothing_stale"),
        ("POST", "/reprocess", {"stale": True, "extra": 1}, 422, "invalid_request"),
        ("POST", "/reprocess", {"batches": ["../b0000000000000000"]}, 422, "invalid_request"),
        ("POST", "/reprocess", [[[[[[[[]]]]]]]], 422, "invalid_request"),
        ("GET", "/reprocess/nosuchbackfill", None, 404, "backfill_not_found"),
    ],
)
def test_bad_lifecycle_requests_get_a_clear_error(
    bare: ApiServer, method: str, path: str, body: object, status: int, code: str
) -> None:
    response = call(bare, method, path, json=body) if body is not None else call(bare, method, path)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


def test_the_lifecycle_routes_need_the_token(bare: ApiServer) -> None:
    for method, path in (("DELETE", "/documents/a.txt"), ("GET", "/deletions/d0000000000000000")):
        response = httpx.request(method, f"{bare.url}{path}", timeout=30)
        assert response.status_code == 401


def test_a_reprocess_body_over_its_own_limit_is_413_before_it_is_parsed(bare: ApiServer) -> None:
    # 2 MiB: far under the upload limit (50 MB), over the 1 MiB a few batch ids ever need.
    ids = ", ".join('"b0000000000000000"' for _ in range(2**21 // 21))
    body = f'{{"batches": [{ids}]}}'.encode()

    def chunks() -> Iterator[bytes]:  # chunked: no Content-Length to refuse it by
        for start in range(0, len(body), 65536):
            yield body[start : start + 65536]

    response = httpx.post(
        f"{bare.url}/reprocess",
        content=chunks(),
        headers={**auth(), "Content-Type": "application/json"},
        timeout=60,
    )
    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "payload_too_large"


def test_a_reprocess_body_that_is_not_json_is_415(bare: ApiServer) -> None:
    response = httpx.post(
        f"{bare.url}/reprocess", content=b"stale=true", headers={**auth()}, timeout=60
    )
    assert response.status_code == 415, response.text
    assert response.json()["error"]["code"] == "unsupported_media_type"
