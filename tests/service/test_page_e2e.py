"""The web page in headless Chromium: a submitted batch's progress bar reaches Complete."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.service.browser import Browser, find_chromium
from tests.service.conftest import Stack
from tests.service.server import TOKEN, auth

STATE = 'document.querySelector(`tr[data-batch="{id}"] [data-cell="{cell}"]`)?.{prop}'


def test_page_shows_a_batch_progress_to_complete(stack: Stack) -> None:
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("no Chromium installed: `make test-e2e` installs Debian's chromium package")
    browser = Browser(chromium)
    try:
        browser.navigate(f"{stack.url}/#token={TOKEN}")
        text = "Rosalind Franklin studied DNA at King's College London with Maurice Wilkins."
        accepted = httpx.post(
            f"{stack.url}/batches",
            json={"documents": [{"id": "page.txt", "text": text}]},
            headers=auth(),
        ).json()
        batch_id = accepted["batch_id"]
        seen: list[str] = []
        deadline = time.monotonic() + 300
        while (
            state := browser.evaluate(STATE.format(id=batch_id, cell="state", prop="textContent"))
        ) != "complete":
            if state and (not seen or seen[-1] != state):
                seen.append(state)
            assert time.monotonic() < deadline, f"page stuck at {seen}"
            time.sleep(0.25)
        bar = browser.evaluate(STATE.format(id=batch_id, cell="bar", prop="value"))
        link = browser.evaluate(STATE.format(id=batch_id, cell="link", prop="href"))
    finally:
        browser.close()
    assert bar == 6
    assert batch_id in link and link.startswith(stack.settings.dagster_ui_url)
    assert len(seen) >= 1  # it was followed live, not only read once finished
