"""Where staged documents and asset values live: a local folder or an S3 bucket, one code path.

``KNOWLEDGE_STORAGE_URL`` is a folder (the default, ``$KNOWLEDGE_HOME/storage``) or
``s3://bucket/prefix`` with ``KNOWLEDGE_STORAGE_ENDPOINT``/``_KEY``/``_SECRET`` (SeaweedFS's S3
gateway or real S3). Callers hold a ``UPath`` and never ask which backend it is; only writing
differs: a local file is written to a temporary name and renamed, an S3 PUT is all-or-nothing
already. A local ``UPath`` is a ``pathlib.Path``, so local storage keeps its exact old layout.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from upath import UPath

from knowledge_assets.files import create_atomic, write_atomic
from knowledge_assets.settings import Settings

__all__ = [
    "create_object",
    "is_local",
    "modified_times",
    "read_object",
    "storage_options",
    "storage_root",
    "write_object",
]

# botocore's own retries (connection errors, 5xx; exponential backoff) ride out an object store
# restart of several seconds (measured with SeaweedFS down for 22 s mid-run: the run went on).
_CLIENT_CONFIG = {
    "retries": {"max_attempts": 10, "mode": "standard"},
    "connect_timeout": 5,
    "read_timeout": 60,
}


def storage_options(settings: Settings) -> dict[str, Any]:
    """s3fs options from the settings: endpoint, credentials, retries, no listing cache.

    Listings are never cached: another process (the API, a worker on another host) stages new
    batches at any time, and a cached listing would hide them.
    """
    options: dict[str, Any] = {"use_listings_cache": False, "config_kwargs": _CLIENT_CONFIG}
    if settings.storage_endpoint:
        options["endpoint_url"] = settings.storage_endpoint
    if settings.storage_key:
        options["key"] = settings.storage_key
    if settings.storage_secret is not None:
        options["secret"] = settings.storage_secret.get_secret_value()
    return options


def storage_root(settings: Settings) -> UPath:
    """The root of staged batches (``blobs/``, ``batches/``) and asset values (``assets/``)."""
    location = settings.storage_location
    if "://" not in location or location.startswith("file://"):
        return UPath(Path(location.removeprefix("file://")).absolute())
    return UPath(location, **storage_options(settings))


def is_local(path: UPath | Path) -> bool:
    """Whether ``path`` is on this machine's file system."""
    return isinstance(path, Path)


def write_object(path: UPath | Path, data: bytes, *, sync: bool = False) -> None:
    """Replace the object at ``path``: readers see the old object or the new one, whole."""
    if isinstance(path, Path):
        write_atomic(path, data, sync=sync)
    else:
        path.fs.pipe_file(path.path, data)


def create_object(path: UPath | Path, data: bytes, *, sync: bool = False) -> bool:
    """Write ``path`` unless it exists; whether this call created it.

    Locally exactly one of two racing writers creates the file (a link that fails if the name is
    taken). On S3 the check and the PUT are two requests: of two first submissions of one batch
    at the same instant, the later PUT wins; both records describe the same documents.
    """
    if isinstance(path, Path):
        return create_atomic(path, data, sync=sync)
    if path.exists():
        return False
    path.fs.pipe_file(path.path, data)
    return True


def read_object(path: UPath | Path) -> bytes:
    """The object's bytes (one GET on S3)."""
    if isinstance(path, Path):
        return path.read_bytes()
    data: bytes = path.fs.cat_file(path.path)
    return data


def modified_times(folder: UPath | Path, suffix: str) -> dict[str, float]:
    """Names (without ``suffix``) and modification times of the objects in ``folder``.

    One listing request on S3, where a ``stat`` per object would cost a request each.
    """
    if isinstance(folder, Path):
        if not folder.is_dir():
            return {}
        return {p.name[: -len(suffix)]: p.stat().st_mtime for p in folder.glob(f"*{suffix}")}
    try:
        entries = folder.fs.ls(folder.path, detail=True)
    except FileNotFoundError:
        return {}
    found: dict[str, float] = {}
    for entry in entries:
        name = str(entry["name"]).rsplit("/", 1)[-1]
        if entry.get("type") == "file" and name.endswith(suffix):
            found[name[: -len(suffix)]] = _timestamp(
                entry.get("LastModified") or entry.get("mtime")
            )
    return found


def _timestamp(value: Any) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    return float(value or 0.0)
