"""Raw inputs to accepted documents, or to per-document rejections a user can act on.

Text is kept exactly as decoded (line endings and all) because every offset downstream indexes
``Document.text``; normalising here would silently shift evidence spans away from the source.
"""

from __future__ import annotations

import codecs
import hashlib
import os
import re
import stat
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from knowledge_assets.pipeline.models import Document, DocumentInput, DocumentRejection

__all__ = [
    "ALLOWED_SUFFIXES",
    "MAX_DOCUMENT_NAME_CHARS",
    "MAX_NAME_CHARS",
    "decode_document",
    "document_name",
    "prepare_documents",
    "prepare_inputs",
    "read_paths",
    "safe_name",
]

RejectionCode = Literal[
    "empty", "too_large", "binary", "encoding", "unsupported", "unreadable", "duplicate"
]

ALLOWED_SUFFIXES = (".md", ".txt")
MAX_NAME_CHARS = 200
MAX_DOCUMENT_NAME_CHARS = 1000

# models.py has no "duplicate" code; a second document under a taken name is not supported.
_NAME_CLASH: RejectionCode = "duplicate"
_MAX_CONTROL_SHARE = 0.1
_CONTROL_BYTES = bytes(b for b in [*range(0x20), 0x7F] if b not in b"\t\n\r\f")
_MAGIC_NUMBERS: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive (or a .docx, .xlsx or .odt file)"),
    (b"PK\x05\x06", "an empty ZIP archive"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"\x7fELF", "an ELF executable"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"\xfd7zXZ\x00", "an xz archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!\x1a\x07", "a RAR archive"),
    (b"\x28\xb5\x2f\xfd", "a zstd archive"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "a legacy Microsoft Office document"),
    (b"SQLite format 3\x00", "an SQLite database"),
)
# UTF-32 marks first: the UTF-32-LE mark begins with the UTF-16-LE one.
_BYTE_ORDER_MARKS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# Controls, surrogates, line/paragraph separators, bidi overrides and invisible marks: an explicit
# list, so a name never depends on the Unicode database of the running Python.
_UNPRINTABLE = (
    "\x00-\x1f\x7f-\x9f\u00ad\u061c\u200b\u200e\u200f\u2028-\u202e"
    "\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\ud800-\udfff"
)
_UNPRINTABLE_CHARS = re.compile(f"[{_UNPRINTABLE}]")
_UNSAFE_NAME_CHARS = re.compile(f"[/\\\\{_UNPRINTABLE}]")
_LEADING_DOTS = re.compile(r"^[\s.]+")
_NO_SEGMENT = re.compile(r"^[\s.]*$")


class _Refusal(Exception):
    """Raised inside the checks; ``decode_document`` turns it into a ``DocumentRejection``."""

    def __init__(self, code: RejectionCode, reason: str) -> None:
        super().__init__(reason)
        self.code: RejectionCode = code
        self.reason = reason


def safe_name(name: str) -> str:
    """Make a document name safe to show, store and use in keys, deterministically.

    Surrounding whitespace goes; path separators, control and invisible characters become ``_``;
    the result is NFC-normalised and loses leading dots (so ``..`` never survives as a name), and
    is ``unnamed`` if nothing is left. A name over ``MAX_NAME_CHARS`` keeps its start plus ``~`` and
    8 hex digits of its hash, so two long names sharing a prefix stay distinct. Applying it twice
    changes nothing.
    """
    cleaned = unicodedata.normalize("NFC", _UNSAFE_NAME_CHARS.sub("_", name.strip()))
    cleaned = _LEADING_DOTS.sub("", cleaned).rstrip() or "unnamed"
    if len(cleaned) <= MAX_NAME_CHARS:
        return cleaned
    return _shortened(cleaned, MAX_NAME_CHARS)


def document_name(name: str) -> str:
    """The name a submitted document goes by: the one function every way in uses.

    A name is the file's path relative to the folder (or inbox) it was submitted from, with its
    extension and ``/`` between folders, or the ``id`` of a JSON document, or an uploaded file's
    name: so the same file gets the same name, and the same document id, whichever way it came.
    Each ``/``-separated part is cleaned by ``safe_name``; empty, ``.`` and ``..`` parts are
    dropped, because a name is metadata, never a path. Over ``MAX_DOCUMENT_NAME_CHARS`` it is cut
    like ``safe_name`` cuts. Applying it twice changes nothing.
    """
    parts = [safe_name(part) for part in name.split("/") if not _NO_SEGMENT.match(part)]
    joined = "/".join(parts) or "unnamed"
    if len(joined) <= MAX_DOCUMENT_NAME_CHARS:
        return joined
    return _shortened(joined, MAX_DOCUMENT_NAME_CHARS)


def _shortened(name: str, limit: int) -> str:
    """The start of ``name``, ``~`` and 8 hex digits of its hash: ``limit`` characters at most."""
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:8]
    return f"{name[: limit - 9].rstrip().rstrip('/')}~{digest}"


def decode_document(item: DocumentInput, *, max_bytes: int) -> Document | DocumentRejection:
    """Decode and check one input; a refusal names the document and says what to do about it.

    Only UTF-8 (with or without a byte order mark) and UTF-16/UTF-32 *with* a byte order mark are
    accepted: anything else is refused rather than guessed, because a wrong guess corrupts text
    silently. The decoded text is kept as is (no newline or Unicode normalisation).
    """
    name = document_name(item.name)
    try:
        text = _decode(item.data, name=name, max_bytes=max_bytes)
    except _Refusal as refusal:
        return _refused(name, refusal.code, refusal.reason, item.data)
    return Document.create(name, text)


def _refused(name: str, code: RejectionCode, reason: str, data: bytes) -> DocumentRejection:
    """A refusal with what identifies its content in the batch id (see ``Batch.create``).

    A document too large is known by its size only: a reader may refuse it unread.
    """
    if code == "too_large":
        return DocumentRejection(name=name, code=code, reason=reason, size=len(data))
    digest = hashlib.sha256(data).hexdigest()
    return DocumentRejection(name=name, code=code, reason=reason, sha256=digest, size=len(data))


def _decode(data: bytes, *, name: str, max_bytes: int) -> str:
    if not data:
        raise _Refusal("empty", f"Document '{name}' is empty.")
    if len(data) > max_bytes:
        raise _Refusal(
            "too_large",
            f"Document '{name}' is {len(data):,} bytes, over the limit of {max_bytes:,} bytes; "
            "split it into smaller documents.",
        )
    encoding, mark = _byte_order_mark(data)
    if encoding == "utf-8":
        _check_not_binary(data, name=name, check_magic=True)
    text = _decode_strict(data, encoding=encoding, skip=len(mark), name=name)
    if encoding != "utf-8":
        _check_not_binary(text.encode("utf-8"), name=name, check_magic=False)
    if not text.strip():
        detail = "contains only whitespace" if text else "is empty"
        raise _Refusal("empty", f"Document '{name}' {detail}.")
    return text


def _byte_order_mark(data: bytes) -> tuple[str, bytes]:
    for mark, encoding in _BYTE_ORDER_MARKS:
        if data.startswith(mark):
            return encoding, mark
    return "utf-8", b""


def _check_not_binary(data: bytes, *, name: str, check_magic: bool) -> None:
    for magic, kind in _MAGIC_NUMBERS if check_magic else ():
        if data.startswith(magic):
            raise _Refusal(
                "binary",
                f"Document '{name}' looks like {kind}, not plain text; "
                "convert it to a .txt or .md file first.",
            )
    if b"\x00" in data:
        raise _Refusal(
            "binary",
            f"Document '{name}' contains NUL characters, so it looks like binary data, not text.",
        )
    controls = len(data) - len(data.translate(None, _CONTROL_BYTES))
    if controls > _MAX_CONTROL_SHARE * len(data):
        raise _Refusal(
            "binary",
            f"Document '{name}' is {controls / len(data):.0%} control characters, "
            "so it looks like binary data, not text.",
        )


def _decode_strict(data: bytes, *, encoding: str, skip: int, name: str) -> str:
    try:
        return data[skip:].decode(encoding)
    except UnicodeDecodeError as error:
        offset = skip + error.start
        if encoding == "utf-8":
            reason = (
                f"Document '{name}' is not valid UTF-8: the byte 0x{data[offset]:02X} at offset "
                f"{offset:,} cannot be decoded. Save it as UTF-8 and submit it again "
                "(other encodings are not guessed)."
            )
        else:
            label = encoding[:6].upper()
            reason = (
                f"Document '{name}' starts with a {label} byte order mark but is not valid "
                f"{label}: {error.reason} at byte offset {offset:,}."
            )
        raise _Refusal("encoding", reason) from None


def prepare_documents(
    items: Sequence[DocumentInput], *, max_bytes: int
) -> tuple[list[Document], list[DocumentRejection]]:
    """Decode every input, keeping input order; one bad document never stops the others.

    Exact duplicates (same name, same text) collapse to the first. A later document with a taken
    name but different text is refused: silently replacing or renaming it would make evidence
    point at text the user did not mean.
    """
    accepted, rejections = prepare_inputs(items, max_bytes=max_bytes)
    return [document for _, document in accepted], rejections


def prepare_inputs(
    items: Sequence[DocumentInput], *, max_bytes: int
) -> tuple[list[tuple[DocumentInput, Document]], list[DocumentRejection]]:
    """``prepare_documents``, each accepted document paired with the input it was decoded from."""
    accepted: dict[str, tuple[DocumentInput, Document]] = {}
    rejections: list[DocumentRejection] = []
    for item in items:
        result = decode_document(item, max_bytes=max_bytes)
        if isinstance(result, DocumentRejection):
            rejections.append(result)
        elif (earlier := accepted.get(result.name)) is None:
            accepted[result.name] = (item, result)
        elif earlier[1].sha256 != result.sha256:
            reason = (
                f"Document '{result.name}' was submitted twice with different content; the first "
                "one was kept. Rename one of them: document names must be unique."
            )
            rejections.append(_refused(result.name, _NAME_CLASH, reason, item.data))
    return list(accepted.values()), rejections


def read_paths(
    paths: Sequence[Path], *, max_bytes: int | None = None, root: Path | None = None
) -> tuple[list[DocumentInput], list[DocumentRejection]]:
    """Read files and folders into inputs; what cannot be read becomes a rejection, not an error.

    Folders are walked recursively in sorted name order, skipping hidden entries (names starting
    with ``.``). Inside a folder, a symbolic link leading outside it is refused; one leading to a
    folder inside it is skipped, since the walk reaches that folder anyway. Files named directly are
    trusted wherever they point. A document's name is its path relative to the folder given (a
    file given directly: its file name), extension included, by ``document_name``, so the same
    files get the same names here, through the inbox and through the API. Two files with one name
    and different content: the later one is refused, naming both paths; identical copies collapse
    to the first. ``max_bytes``, if given, refuses larger files before reading them. With
    ``root`` (the inbox), files given directly are named by their path relative to it.
    """
    reader = _Reader(max_bytes=max_bytes, root=root)
    for path in paths:
        reader.add(path)
    return reader.inputs, reader.rejections


@dataclass
class _Reader:
    """Accumulates inputs and rejections across all given paths, so names clash across them."""

    max_bytes: int | None
    root: Path | None = None
    inputs: list[DocumentInput] = field(default_factory=list)
    rejections: list[DocumentRejection] = field(default_factory=list)
    origins: dict[str, tuple[Path, str]] = field(default_factory=dict)
    seen: set[Path] = field(default_factory=set)

    def add(self, path: Path) -> None:
        if path.is_dir():
            self.walk(path)
        elif path.exists():
            self.add_file(path, path.resolve(), self.given_name(path))
        else:
            self.reject(self.given_name(path), "unreadable", f"'{_shown(path)}' does not exist.")

    def given_name(self, path: Path) -> str:
        """The name of a file given directly: relative to ``root`` if under it, else its name."""
        if self.root is not None and path.is_relative_to(self.root):
            return document_name(path.relative_to(self.root).as_posix())
        return document_name(path.name)

    def walk(self, root: Path) -> None:
        real_root = root.resolve()
        pending = self.list_folder(root, root)[::-1]
        while pending:
            path = pending.pop()
            name = document_name(path.relative_to(root).as_posix())
            if path.is_symlink():
                self.add_link(path, real_root, name)
            elif path.is_dir():
                pending.extend(self.list_folder(path, root)[::-1])
            else:
                self.add_file(path, path.resolve(), name)

    def list_folder(self, folder: Path, root: Path) -> list[Path]:
        try:
            with os.scandir(folder) as entries:
                names = sorted(e.name for e in entries if not e.name.startswith("."))
        except OSError as error:
            where = folder.name if folder == root else folder.relative_to(root).as_posix()
            name = document_name(where)
            self.reject(name, "unreadable", _os_reason(folder, error, what="Folder"))
            return []
        return [folder / name for name in names]

    def add_link(self, link: Path, real_root: Path, name: str) -> None:
        try:
            target = link.resolve(strict=True)
        except (OSError, RuntimeError):
            self.reject(name, "unreadable", f"'{_shown(link)}' is a broken symbolic link.")
            return
        if not target.is_relative_to(real_root):
            reason = (
                f"'{_shown(link)}' is a symbolic link pointing outside the folder "
                f"'{_shown(real_root)}'; links that leave the folder are refused."
            )
            self.reject(name, "unreadable", reason)
        elif not target.is_dir():
            self.add_file(link, target, name)

    def add_file(self, path: Path, real: Path, name: str) -> None:
        suffix = path.suffix.lower()
        if suffix not in ALLOWED_SUFFIXES:
            kind = f"a {suffix} file" if suffix else "a file without extension"
            allowed = " and ".join(ALLOWED_SUFFIXES)
            reason = f"'{_shown(path)}' is {kind}; only {allowed} files are accepted."
            self.reject(name, "unsupported", reason, size=_size(real))
            return
        if real in self.seen:
            return
        self.seen.add(real)
        data = self.read(path, real, name)
        if data is not None:
            self.accept(path, name, data)

    def read(self, path: Path, real: Path, name: str) -> bytes | None:
        # Opened without following links and without blocking (a FIFO would hang a plain open),
        # then checked on the open descriptor, so the file checked is the file read.
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        try:
            with open(os.open(real, flags), "rb") as handle:
                status = os.fstat(handle.fileno())
                if not stat.S_ISREG(status.st_mode):
                    reason = f"'{_shown(path)}' is not a regular file."
                    self.reject(name, "unreadable", reason)
                    return None
                if self.max_bytes is not None and status.st_size > self.max_bytes:
                    reason = (
                        f"'{_shown(path)}' is {status.st_size:,} bytes, over the limit of "
                        f"{self.max_bytes:,} bytes; split it into smaller documents."
                    )
                    self.reject(name, "too_large", reason, size=status.st_size)
                    return None
                return handle.read()
        except OSError as error:
            self.reject(name, "unreadable", _os_reason(path, error, what="File"))
            return None

    def accept(self, path: Path, name: str, data: bytes) -> None:
        digest = hashlib.sha256(data).hexdigest()
        earlier = self.origins.get(name)
        if earlier is None:
            self.origins[name] = (path, digest)
            self.inputs.append(DocumentInput(name=name, data=data))
        elif earlier[1] != digest:
            reason = (
                f"'{_shown(path)}' would be document '{name}', like '{_shown(earlier[0])}' "
                "which has different content; the first was kept. Rename one of them."
            )
            self.rejections.append(_refused(name, _NAME_CLASH, reason, data))

    def reject(self, name: str, code: RejectionCode, reason: str, size: int | None = None) -> None:
        self.rejections.append(DocumentRejection(name=name, code=code, reason=reason, size=size))


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


def _shown(path: Path) -> str:
    """A path as text that is safe to show and to serialise (no controls, no lone surrogates)."""
    return _UNPRINTABLE_CHARS.sub("?", str(path))


def _os_reason(path: Path, error: OSError, *, what: str) -> str:
    detail = error.strerror or type(error).__name__
    return f"{what} '{_shown(path)}' cannot be read: {detail}."
