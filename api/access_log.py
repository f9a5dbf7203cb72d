"""The access log without secrets: a stream token in a query string is logged as ``[redacted]``.

``EventSource`` can only pass its short-lived token in the URL (``?access_token=``), and
uvicorn's access log prints every request line in full, so without this filter valid tokens
landed in ``api.log``.
"""

from __future__ import annotations

import copy
import logging
import re
from typing import Any

from uvicorn.config import LOGGING_CONFIG

__all__ = ["RedactTokens", "log_config", "redact"]

_TOKEN_VALUE = re.compile(r"((?:^|[?&])access_token=)[^&#\s]*", re.IGNORECASE)


def redact(text: str) -> str:
    """``text`` with the value of every ``access_token`` query parameter replaced."""
    return _TOKEN_VALUE.sub(r"\1[redacted]", text)


class RedactTokens(logging.Filter):
    """Rewrites the request line of uvicorn's access records before any handler sees them."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Keep the record, with its arguments redacted."""
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        record.msg = redact(str(record.msg))
        return True


def log_config() -> dict[str, Any]:
    """Uvicorn's default logging configuration with ``RedactTokens`` on the access handler."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["redact_tokens"] = {"()": f"{__name__}.RedactTokens"}
    config["handlers"]["access"]["filters"] = ["redact_tokens"]
    return config
