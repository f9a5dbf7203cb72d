"""One submission, one batch, whichever way it comes; a refused one is answered, never recorded.

Against the API server of ``bare`` (its own database and home, no daemon: nothing runs), the
``knowledge`` command as a subprocess on the same home, and the real inbox sensor.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import httpx
import pytest
import sqlalchemy as sa

from knowledge_assets.db import tables
from knowledge_assets.db.engine import engine_for
from knowledge_assets.defs.extraction.sensor import inbox_sensor
from knowledge_assets.defs.resources import KnowledgeResource
from knowledge_assets.instance.home import open_instance
from knowledge_assets.pipeline.batches import BatchStorage
from knowledge_assets.pipeline.models import Document
from knowledge_assets.settings import Settings
from tests.service.server import ApiServer, auth

FILES = {
    "a.txt": b"Grace Hopper worked at Harvard University with Howard Aiken.",
    "sub/b.md": b"Marie Curie was born in Warsaw.\r\n",
    "empty.txt": b"",
}
BAD = {
    "empty.txt": b"",
    "latin1.txt": "Caf\u00e9 cr\u00e8me".encode("latin-1"),
    "blank.md": b" \n\t ",
    "scan.txt": b"%PDF-1.7 not text",
}


def knowledge(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "knowledge_assets.cli", *args],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def write_folder(folder: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return folder


def upload(server: ApiServer, files: dict[str, bytes]) -> httpx.Response:
    parts = [("files", (name, data, "text/plain")) for name, data in files.items()]
    return httpx.post(f"{server.url}/batches", files=parts, headers=auth(), timeout=60)


def settings_of(server: ApiServer, monkeypatch: pytest.MonkeyPatch) -> Settings:
    for key, value in server.env.items():
        if key.startswith(("KNOWLEDGE_", "DAGSTER_")):
            monkeypatch.setenv(key, value)
    return Settings()


def staged(settings: Settings) -> set[str]:
    return {p.name for p in (settings.storage_dir / "batches").glob("*.json")}


def through_the_inbox(settings: Settings, files: dict[str, bytes]) -> str:
    """Drop the files into the inbox, settled, and run one tick of the real sensor."""
    write_folder(settings.inbox_dir, files)
    past = time.time() - 60
    for name in files:
        os.utime(settings.inbox_dir / name, (past, past))
    with open_instance(settings) as instance:
        context = dg.build_sensor_context(
            instance=instance, resources={"knowledge": KnowledgeResource()}
        )
        result = inbox_sensor(context)
    assert isinstance(result, dg.SensorResult)
    (request,) = result.run_requests or []
    return str(request.partition_key)


def test_the_same_files_by_cli_inbox_api_and_extract_are_one_batch(
    bare: ApiServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_of(bare, monkeypatch)
    folder = write_folder(tmp_path / "docs", FILES)

    by_api = upload(bare, FILES)
    assert by_api.status_code == 202, by_api.text
    api_batch = by_api.json()["batch_id"]

    submitted = knowledge(bare.env, "submit", str(folder), "--json")
    assert submitted.returncode == 0, submitted.stderr
    cli_batch = json.loads(submitted.stdout.strip().splitlines()[-1])["batch_id"]

    inbox_batch = through_the_inbox(settings, FILES)

    extracted = knowledge(bare.env, "extract", str(folder), "--json")
    assert extracted.returncode == 0, extracted.stderr
    direct_batch = json.loads(extracted.stdout.strip().splitlines()[-1])["batch_id"]

    assert cli_batch == api_batch == inbox_batch == direct_batch
    manifest = BatchStorage(settings.storage_dir).manifest(api_batch)
    assert manifest.source == "api"  # the first submission's record is kept
    assert [e.name for e in manifest.documents] == ["a.txt", "sub/b.md"]
    assert [r.name for r in manifest.rejections] == ["empty.txt"]

    # The documents the direct path stored have the ids the staged batch's documents get.
    storage = BatchStorage(settings.storage_dir)
    expected = {
        Document.create(e.name, storage.read_blob(e.blob).decode("utf-8")).id: e.name
        for e in manifest.documents
    }
    d = tables.documents
    with engine_for(bare.env["KNOWLEDGE_DATABASE_URL"]).connect() as connection:
        rows = connection.execute(sa.select(d.c.id, d.c.name).where(d.c.id.in_(expected)))
        assert dict(rows.all()) == expected


def test_every_document_refused_is_422_with_reasons_and_nothing_recorded(
    bare: ApiServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_of(bare, monkeypatch)
    before = staged(settings)
    for name, data in BAD.items():
        response = upload(bare, {name: data})
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["code"] == "all_documents_refused"
        (document,) = error["documents"]
        assert document["name"] == name
        assert name in document["reason"]
    as_json = httpx.post(
        f"{bare.url}/batches",
        json={"documents": [{"id": "x.txt", "text": ""}, {"id": "y.txt", "text": " "}]},
        headers=auth(),
    )
    assert as_json.status_code == 422
    assert [d["name"] for d in as_json.json()["error"]["documents"]] == ["x.txt", "y.txt"]
    assert staged(settings) == before


def test_a_good_file_alone_and_with_bad_ones_are_two_unchanging_batches(
    bare: ApiServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_of(bare, monkeypatch)
    good = {"good.txt": b"Alan Turing studied at King's College, Cambridge."}
    with_bad = upload(bare, {**good, **BAD}).json()["batch_id"]
    first = httpx.get(f"{bare.url}/batches/{with_bad}", headers=auth()).json()
    alone = upload(bare, good).json()["batch_id"]
    assert alone != with_bad
    record = (settings.storage_dir / "batches" / f"{with_bad}.json").read_bytes()
    assert upload(bare, {**good, **BAD}).json()["batch_id"] == with_bad
    assert (settings.storage_dir / "batches" / f"{with_bad}.json").read_bytes() == record
    again = httpx.get(f"{bare.url}/batches/{with_bad}", headers=auth()).json()
    assert again["documents"] == first["documents"]
    statuses = {d["name"]: d["status"] for d in again["documents"]}
    assert statuses == {"good.txt": "accepted", **{name: "refused" for name in BAD}}
    single = httpx.get(f"{bare.url}/batches/{alone}", headers=auth()).json()
    assert [(d["name"], d["status"]) for d in single["documents"]] == [("good.txt", "accepted")]


def test_the_cli_exits_2_with_every_reason_when_all_are_refused(
    bare: ApiServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_of(bare, monkeypatch)
    before = staged(settings)
    folder = write_folder(tmp_path / "bad", BAD)
    result = knowledge(bare.env, "submit", str(folder), "--json")
    assert result.returncode == 2
    assert "every document was refused" in result.stderr
    for name in BAD:
        assert f"  {name}: " in result.stderr
    error = json.loads(result.stdout.strip().splitlines()[-1])["error"]
    assert error["code"] == "all_documents_refused"
    assert sorted(d["name"] for d in error["documents"]) == sorted(BAD)
    assert "Traceback" not in result.stderr
    assert staged(settings) == before
