"""Bad requests to the lifecycle routes: clear codes, nothing registered, nothing queued."""

from __future__ import annotations

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
