"""Schemathesis against the served OpenAPI schema: no generated request causes a server error."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from tests.service.server import TOKEN, ApiServer

log = logging.getLogger(__name__)


def schemathesis(server: ApiServer, workdir: Path, *options: str) -> None:
    executable = Path(sys.executable).parent / "schemathesis"
    result = subprocess.run(
        [
            str(executable), "run", f"{server.url}/openapi.json",
            "--header", f"Authorization: Bearer {TOKEN}",
            "--checks", "not_a_server_error", "--seed", "5", "--request-timeout", "20",
            *options,
        ],
        capture_output=True, text=True, timeout=900, cwd=workdir,  # its cache stays out of the repo
    )  # fmt: skip
    log.info(result.stdout[-3000:])
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


def test_fuzzed_requests_find_no_server_error(bare: ApiServer, tmp_path: Path) -> None:
    # The stateful phase would follow POST /batches into its never-ending event stream (this
    # server has no daemon, so batches stay queued and their streams stay open).
    schemathesis(bare, tmp_path, "--phases", "fuzzing", "--max-examples", "4")


@pytest.mark.slow
def test_coverage_and_fuzzing_find_no_server_error(bare: ApiServer, tmp_path: Path) -> None:
    # Boundary values of every parameter and body field: hundreds of submitted batches.
    schemathesis(bare, tmp_path, "--phases", "coverage,fuzzing", "--max-examples", "25")
