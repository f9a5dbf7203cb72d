"""The web page: static HTML and JavaScript, holding no secret (the token stays in the browser)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

router = APIRouter(tags=["page"], include_in_schema=False)
STATIC = Path(__file__).resolve().parents[1] / "static"
_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; style-src 'self'; img-src 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@router.get("/")
def index() -> FileResponse:
    """The page: batches, and the graph to explore."""
    return FileResponse(STATIC / "index.html", headers=_SECURITY_HEADERS)


# The page's files: a fixed list, so a requested name never becomes a path.
_FILES = {
    "app.js": ("app.js", "text/javascript"),
    "explore.js": ("explore.js", "text/javascript"),
    "app.css": ("app.css", "text/css"),
    "vendor/cytoscape.min.js": ("vendor/cytoscape/cytoscape.min.js", "text/javascript"),
}


@router.get("/static/{name:path}")
def static(name: str) -> FileResponse:
    """The page's scripts, style and vendored library."""
    if name not in _FILES:
        from api.errors import ApiError

        raise ApiError(404, "not_found", "no such file")
    path, media_type = _FILES[name]
    return FileResponse(STATIC / path, media_type=media_type, headers=_SECURITY_HEADERS)
