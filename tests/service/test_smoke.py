import httpx

from tests.service.conftest import Stack
from tests.service.server import auth


def test_completed_batch_is_visible(stack: Stack) -> None:
    body = httpx.get(f"{stack.url}/batches/{stack.batch_id}", headers=auth()).json()
    assert body["state"] == "complete"
