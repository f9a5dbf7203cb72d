"""``knowledge submit PATH --follow``: progress to Complete, across an API restart mid-stream."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import PROJECT_ROOT
from tests.service.conftest import Stack
from tests.service.server import TOKEN, ApiServer


def test_submit_follow_shows_every_stage_to_complete_across_an_api_restart(
    stack: Stack, tmp_path: Path
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "follow.txt").write_text(
        "Marie Curie worked in Paris with Pierre Curie at the Sorbonne.", encoding="utf-8"
    )
    server = stack.new_server("follow-api").start()
    output = tmp_path / "follow.out"
    env = dict(stack.env, KNOWLEDGE_API_URL=server.url, KNOWLEDGE_API_TOKEN=TOKEN)
    with output.open("w") as out:
        follower = subprocess.Popen(
            [sys.executable, "-m", "knowledge_assets.cli", "submit", str(folder), "--follow"],
            env=env, cwd=PROJECT_ROOT, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while "stage" not in output.read_text():
            assert follower.poll() is None, output.read_text()
            assert time.monotonic() < deadline, output.read_text()
            time.sleep(0.2)
        server.kill()
        time.sleep(1.5)  # the follower notices and retries against a dead port
        server = ApiServer(server.env, server.log_path, port=server.port).start()
        assert follower.wait(timeout=300) == 0, output.read_text()
    finally:
        server.stop()
        if follower.poll() is None:
            follower.kill()
    lines = output.read_text().splitlines()
    events = [line.split(None, 1) for line in lines if line.split(None, 1)[0] in ("state", "stage")]
    states = [json.loads(rest)["state"] for kind, rest in events if kind == "state"]
    assert states == [
        "pending", "preprocessing", "extracting", "resolving", "validating", "ingesting",
        "complete",
    ]  # fmt: skip
    finished = [
        json.loads(rest)["stage"]
        for kind, rest in events
        if kind == "stage" and json.loads(rest)["status"] == "finished"
    ]
    assert finished == [
        "documents", "chunks", "extractions", "resolved_entities", "validated_graph",
        "ingested_graph",
    ]  # fmt: skip
    assert lines[-1].endswith(": complete")
