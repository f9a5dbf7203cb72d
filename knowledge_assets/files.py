"""Files written whole or not at all: a reader never sees half of one, a killed writer leaves none.

The one atomic-write helper of the project (staged documents, asset values, the API token file,
``DAGSTER_HOME``, the demo corpus dropped into the inbox). Without ``sync`` it protects against a
process killed mid-write; with ``sync`` the bytes reach the disk before the rename, for data that
exists nowhere else (a submitted document), so a power loss cannot leave an empty file either.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_writer", "create_atomic", "write_atomic"]


@contextlib.contextmanager
def atomic_writer(
    path: Path, *, mode: int = 0o600, sync: bool = False, replace: bool = True
) -> Iterator[BinaryIO]:
    """A binary file object whose content replaces ``path`` when the block ends without error.

    The bytes go to a hidden temporary file beside ``path`` (same file system, so the final
    rename is atomic), readable by its owner only unless ``mode`` says otherwise; on an error
    the temporary file is removed and ``path`` is left as it was. With ``replace=False`` an
    existing ``path`` is never touched: the block raises ``FileExistsError`` instead (the file
    is linked into place, which fails atomically if the name is taken).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        if mode != 0o600:  # mkstemp creates 0600
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as out:
            yield out
            if sync:
                out.flush()
                os.fsync(out.fileno())
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)
            os.unlink(tmp)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_atomic(
    path: Path,
    data: bytes | Iterable[bytes],
    *,
    mode: int = 0o600,
    sync: bool = False,
    replace: bool = True,
) -> None:
    """Replace ``path`` with ``data`` (bytes, or pieces of bytes) atomically."""
    with atomic_writer(path, mode=mode, sync=sync, replace=replace) as out:
        if isinstance(data, bytes):
            out.write(data)
        else:
            out.writelines(data)


def create_atomic(
    path: Path, data: bytes | Iterable[bytes], *, mode: int = 0o600, sync: bool = False
) -> bool:
    """Write ``path`` atomically unless it exists; whether this call created it.

    For records that must never change once made: of two writers racing, exactly one creates
    the file and the other leaves it as the first wrote it.
    """
    try:
        write_atomic(path, data, mode=mode, sync=sync, replace=False)
    except FileExistsError:
        return False
    return True
