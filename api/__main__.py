"""``python -m api``: serve the API with uvicorn on ``KNOWLEDGE_API_HOST:KNOWLEDGE_API_PORT``."""

from __future__ import annotations

import logging

import uvicorn

from api.access_log import log_config
from api.app import create_app
from knowledge_assets.settings import Settings


def main() -> None:
    """Read settings now, build the app and serve until SIGTERM or Ctrl-C."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    settings = Settings()
    uvicorn.run(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        log_level="info",
        log_config=log_config(),  # no stream token reaches the access log
        # Streams end on shutdown; clients resume with Last-Event-ID from another process.
        timeout_graceful_shutdown=5,
    )


if __name__ == "__main__":
    main()
