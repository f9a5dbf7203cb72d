"""Security of the API: tokens on every route, body limits, content types, hostile file names."""

from __future__ import annotations

import hashlib
import os
import re
import socket
import uuid
from pathlib import Path

import httpx
import pytest

from knowledge_assets.pipeline.documents import MAX_DOCUMENT_NAME_CHARS, MAX_NAME_CHARS
from tests.conftest import PROJECT_ROOT
from tests.service.server import TOKEN, ApiServer, auth

# Unique per run: another checkout running this test at the same time plants the same names.
MARKER = f"zq7marker{uuid.uuid4().hex[:8]}"
PUBLIC = {"/healthz", "/readyz"}


def schema(server: ApiServer) -> dict:
    response = httpx.get(f"{server.url}/openapi.json", headers=auth())
    assert response.status_code == 200
    return response.json()


def concrete(path: str) -> str:
    return path.replace("{batch_id}", "b0123456789abcdef").replace("{entity_id}", "e1")


def test_every_route_but_health_needs_the_token(bare: ApiServer) -> None:
    routes = [
        (method.upper(), concrete(path))
        for path, operations in schema(bare)["paths"].items()
        for method in operations
        if path not in PUBLIC
    ]
    routes.append(("GET", "/openapi.json"))
    assert len(routes) >= 11
    for method, path in routes:
        for headers in ({}, auth("wrong-token-0123456789"), {"Authorization": f"Basic {TOKEN}"}):
            response = httpx.request(method, bare.url + path, headers=headers)
            assert response.status_code == 401, (method, path, response.text)
            assert response.json()["error"]["code"] == "unauthorized"
            assert response.headers["WWW-Authenticate"] == "Bearer"
    for path in PUBLIC:
        assert httpx.get(bare.url + path).status_code == 200


def test_event_streams_accept_only_valid_signed_tokens(bare: ApiServer) -> None:
    url = f"{bare.url}/batches/b0123456789abcdef/events"
    for token in ("", "123.abc", f"{2**40}.forged", TOKEN):
        response = httpx.get(url, params={"access_token": token})
        assert response.status_code == 401, token
    issued = httpx.post(f"{bare.url}/auth/stream-token", headers=auth()).json()
    assert issued["expires_in"] > 0
    # Valid token: past authentication, so the unknown batch is what is reported.
    response = httpx.get(url, params={"access_token": issued["token"]})
    assert response.status_code == 404


def raw_request(server: ApiServer, head: str, body_part: bytes) -> bytes:
    """Send the head and only part of the body, then read what the server answers."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as connection:
        connection.sendall(head.encode() + body_part)
        answer = b""
        while b"\r\n\r\n" not in answer or len(answer) < 200:
            chunk = connection.recv(65536)
            if not chunk:
                break
            answer += chunk
        return answer


def test_declared_oversized_upload_is_refused_before_the_body_is_sent(bare: ApiServer) -> None:
    head = (
        "POST /batches HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {TOKEN}\r\nContent-Length: 5000000000\r\n\r\n"
    )
    answer = raw_request(bare, head, b'{"documents": [')
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"payload_too_large" in answer


def test_chunked_oversized_upload_is_refused_while_streaming(bare: ApiServer) -> None:
    head = (
        "POST /batches HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {TOKEN}\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    # Valid JSON as far as it goes (one long text), so only the size limit can stop it.
    piece = b"x" * 65536
    opening = b'{"documents": [{"id": "a", "text": "'
    chunks = b"%x\r\n" % len(opening) + opening + b"\r\n"
    chunks += (b"%x\r\n" % len(piece) + piece + b"\r\n") * 17  # 1.1 MB, limit 1 MB, no end chunk
    answer = raw_request(bare, head, chunks)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


def test_only_json_and_multipart_text_files_are_accepted(bare: ApiServer) -> None:
    response = httpx.post(f"{bare.url}/batches", content=b"hello", headers={
        **auth(), "Content-Type": "text/plain"})  # fmt: skip
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"
    files = {"files": ("picture.txt", b"\x89PNG\r\n\x1a\n", "image/png")}
    response = httpx.post(f"{bare.url}/batches", files=files, headers=auth())
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_file_type"


def test_same_content_is_the_same_batch_by_json_or_upload(bare: ApiServer) -> None:
    text = "Grace Hopper joined the Navy in Arlington."
    by_json = httpx.post(
        f"{bare.url}/batches", json={"documents": [{"id": "a.txt", "text": text}]}, headers=auth()
    )
    again = httpx.post(
        f"{bare.url}/batches", json={"documents": [{"id": "a.txt", "text": text}]}, headers=auth()
    )
    upload = httpx.post(
        f"{bare.url}/batches",
        files={"files": ("a.txt", text.encode(), "text/plain")},
        headers=auth(),
    )
    assert by_json.status_code == again.status_code == upload.status_code == 202
    assert by_json.json()["batch_id"] == again.json()["batch_id"] == upload.json()["batch_id"]
    assert by_json.json()["events_url"].endswith("/events")


def multipart(names: list[bytes], boundary: str = "hostileBOUNDARY") -> bytes:
    parts = b"".join(
        b"--" + boundary.encode() + b"\r\n"
        b'Content-Disposition: form-data; name="files"; filename="' + name + b'"\r\n'
        b"Content-Type: text/plain\r\n\r\n"
        b"Document number " + str(i).encode() + b" about Lisbon and Porto.\r\n"
        for i, name in enumerate(names)
    )
    return parts + b"--" + boundary.encode() + b"--\r\n"


def found_anywhere(roots: list[Path]) -> list[str]:
    hits = []
    for root in roots:
        for folder, dirs, files in os.walk(root, onerror=lambda e: None):
            dirs[:] = [d for d in dirs if d not in (".venv", ".git", "proc", "sys")]
            hits += [os.path.join(folder, n) for n in dirs + files if MARKER in n]
    return hits


def test_hostile_file_names_leave_nothing_outside_the_storage(
    bare: ApiServer, tmp_path: Path
) -> None:
    home = Path(bare.env["KNOWLEDGE_HOME"])
    storage = home / "storage"
    outside = tmp_path / "outside"
    outside.mkdir()
    storage.mkdir(parents=True, exist_ok=True)
    (storage / f"{MARKER}-link.txt").symlink_to(outside / f"{MARKER}-target")
    # A dangling link planted where the uploaded bytes' blob will go must not be written through.
    digest = hashlib.sha256(b"Document number 0 about Lisbon and Porto.").hexdigest()
    blob = storage / "blobs" / digest[:2] / digest
    blob.parent.mkdir(parents=True)
    blob.symlink_to(outside / f"{MARKER}-blob-target")
    names = [
        f"../../../../../../tmp/{MARKER}-dotdot.txt".encode(),
        f"/etc/{MARKER}-absolute.txt".encode(),
        f"{MARKER}-nul\x00.txt".encode(),
        (MARKER + "x" * 5000 + ".txt").encode(),
        f"..\\..\\{MARKER}-windows.txt".encode(),
        f"{MARKER}-link.txt".encode(),
        f"../{MARKER}-link.txt".encode(),
        f"%2e%2e%2f{MARKER}-encoded.txt".encode(),
        b"..",
        f"{MARKER}-\xe2\x80\xae-bidi.txt".encode(),
    ]
    before = set(found_anywhere([storage]))
    stored: list[str] = []
    for name in names:  # one upload each: a parser refusing one name must not hide the others
        response = httpx.post(
            f"{bare.url}/batches",
            content=multipart([name]),
            headers={**auth(), "Content-Type": "multipart/form-data; boundary=hostileBOUNDARY"},
        )
        assert response.status_code in (202, 400), response.text
        if response.status_code == 202:
            batch_url = f"{bare.url}/batches/{response.json()['batch_id']}"
            stored += [d["name"] for d in httpx.get(batch_url, headers=auth()).json()["documents"]]
    assert len(stored) >= len(names) - 1
    for name in stored:
        # A document name keeps "/" between folders, but never a part that climbs or hides.
        assert "\\" not in name and "\x00" not in name and len(name) <= MAX_DOCUMENT_NAME_CHARS
        for part in name.split("/"):
            assert part and not part.startswith(".") and len(part) <= MAX_NAME_CHARS, name
    assert list(outside.iterdir()) == []
    hits = set(found_anywhere([Path("/tmp"), PROJECT_ROOT, Path("/etc"), home])) - before
    assert hits == set()
    # What the upload wrote is content-addressed: hex blob names and batch manifests only.
    for path in storage.rglob("*"):
        if path.is_file() and not path.is_symlink():
            assert re.fullmatch(r"[0-9a-f]{64}|b[0-9a-f]{16}\.json", path.name), path


def test_search_text_is_a_bound_parameter_not_sql(bare: ApiServer) -> None:
    for q in ("' OR 1=1 --", "%", "_", "\\", "'; DROP TABLE knowledge.entities; --"):
        response = httpx.get(f"{bare.url}/entities", params={"q": q}, headers=auth())
        assert response.status_code == 200, q
        assert response.json()["items"] == []
    assert httpx.get(f"{bare.url}/readyz").status_code == 200


@pytest.mark.parametrize(
    "batch_id", ["%2e%2e", "b..%2F..%2Fetc", "B0123456789ABCDEF", "b" + "0" * 17]
)
def test_malformed_batch_ids_never_reach_the_storage(bare: ApiServer, batch_id: str) -> None:
    response = httpx.get(f"{bare.url}/batches/{batch_id}", headers=auth())
    assert response.status_code in (404, 422)
