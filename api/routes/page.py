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
    """The batches page."""
    return FileResponse(STATIC / "index.html", headers=_SECURITY_HEADERS)


@router.get("/static/{name}")
def static(name: str) -> FileResponse:
    """The page's script and style (a fixed list: a name never becomes a path)."""
    files = {"app.js": "text/javascript", "app.css": "text/css"}
    if name not in files:
        from api.errors import ApiError

        raise ApiError(404, "not_found", "no such file")
    return FileResponse(STATIC / name, media_type=files[name], headers=_SECURITY_HEADERS)
