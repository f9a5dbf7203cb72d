"""Decoding, checking and reading documents: every refusal says what is wrong and with what."""

from __future__ import annotations

import codecs
import os
import random
from pathlib import Path

import pytest

from knowledge_assets.pipeline import documents
from knowledge_assets.pipeline.documents import (
    MAX_DOCUMENT_NAME_CHARS,
    MAX_NAME_CHARS,
    decode_document,
    document_name,
    prepare_documents,
    read_paths,
    safe_name,
)
from knowledge_assets.pipeline.models import Document, DocumentInput, DocumentRejection

LIMIT = 1_000


def decode(data: bytes, name: str = "report", max_bytes: int = LIMIT) -> Document:
    result = decode_document(DocumentInput(name=name, data=data), max_bytes=max_bytes)
    assert isinstance(result, Document), result
    return result


def refuse(data: bytes, name: str = "report", max_bytes: int = LIMIT) -> DocumentRejection:
    result = decode_document(DocumentInput(name=name, data=data), max_bytes=max_bytes)
    assert isinstance(result, DocumentRejection), result
    assert result.name == safe_name(name)
    assert f"'{result.name}'" in result.reason
    return result


def test_plain_utf8_is_kept_exactly_as_read() -> None:
    text = "  Caf\u00e9 in M\u00fcnchen.\r\nLine two\rthree\u2028 \U0001f600\n\n"
    document = decode(text.encode("utf-8"))
    assert document.text == text
    assert document.name == "report"
    assert document == Document.create("report", text)


@pytest.mark.parametrize("data", [b"", codecs.BOM_UTF8])
def test_empty_document_is_refused(data: bytes) -> None:
    rejection = refuse(data)
    assert rejection.code == "empty"
    assert rejection.reason == "Document 'report' is empty."


@pytest.mark.parametrize(
    "data", [b" ", b"\n\r\n\t \f", "\u00a0\u3000\u2028".encode(), "  ".encode("utf-16")]
)
def test_whitespace_only_document_is_refused(data: bytes) -> None:
    rejection = refuse(data)
    assert rejection.code == "empty"
    assert rejection.reason == "Document 'report' contains only whitespace."


def test_too_large_names_the_size_and_the_limit() -> None:
    rejection = refuse(b"a" * 1_001)
    assert rejection.code == "too_large"
    assert "1,001 bytes" in rejection.reason
    assert "limit of 1,000 bytes" in rejection.reason


def test_size_is_checked_before_decoding() -> None:
    assert refuse(b"\xff\x00" * 600).code == "too_large"
    assert decode(b"a" * LIMIT).text == "a" * LIMIT


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", "a PDF document"),
        (b"PK\x03\x04\x14\x00\x06\x00", "a ZIP archive"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "a PNG image"),
        (b"\x7fELF\x02\x01\x01\x00", "an ELF executable"),
        (b"\x1f\x8b\x08\x00\x00\x00\x00\x00", "a gzip archive"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "a JPEG image"),
        (b"GIF89a\x01\x00\x01\x00", "a GIF image"),
    ],
)
def test_known_binary_formats_are_named(data: bytes, kind: str) -> None:
    rejection = refuse(data)
    assert rejection.code == "binary"
    assert f"looks like {kind}" in rejection.reason
    assert ".txt or .md" in rejection.reason


def test_nul_bytes_mean_binary() -> None:
    rejection = refuse(b"plain looking text\x00 with a NUL")
    assert rejection.code == "binary"
    assert "NUL" in rejection.reason


def test_utf16_without_byte_order_mark_is_not_guessed() -> None:
    rejection = refuse("Hello world".encode("utf-16-le"))
    assert rejection.code == "binary"


def test_nul_inside_utf16_text_means_binary() -> None:
    rejection = refuse("text\x00more".encode("utf-16"))
    assert rejection.code == "binary"
    assert "NUL" in rejection.reason


def test_many_control_characters_mean_binary() -> None:
    rejection = refuse(b"\x01\x02\x03\x04\x1b" * 10 + b"some text" * 5)
    assert rejection.code == "binary"
    assert "53% control characters" in rejection.reason


def test_a_few_control_characters_are_text() -> None:
    text = "\x1b[1mBold\x1b[0m text with a form feed\f and a tab\t, " * 5
    assert decode(text.encode()).text == text


def test_invalid_utf8_names_the_offset_and_is_not_guessed() -> None:
    rejection = refuse("Caf\u00e9 in M\u00fcnchen".encode("latin-1"))
    assert rejection.code == "encoding"
    assert "not valid UTF-8" in rejection.reason
    assert "byte 0xE9 at offset 3" in rejection.reason
    assert "Save it as UTF-8" in rejection.reason


def test_encoded_lone_surrogate_is_an_encoding_error() -> None:
    rejection = refuse(b"abc\xed\xa0\x80def")
    assert rejection.code == "encoding"
    assert "offset 3" in rejection.reason


def test_offset_counts_the_byte_order_mark() -> None:
    rejection = refuse(codecs.BOM_UTF8 + b"ab\xc3")
    assert "at offset 5" in rejection.reason


def test_utf8_byte_order_mark_is_stripped() -> None:
    assert decode(codecs.BOM_UTF8 + "\u00e9t\u00e9".encode()).text == "\u00e9t\u00e9"


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32"])
def test_utf16_and_utf32_with_byte_order_mark_are_decoded(encoding: str) -> None:
    text = "Z\u00fcrich \U0001f600 \u4e2d\u6587\r\n"
    data = text.encode(encoding)
    if encoding in ("utf-16-le", "utf-16-be"):
        bom = codecs.BOM_UTF16_LE if encoding.endswith("le") else codecs.BOM_UTF16_BE
        data = bom + data
    assert decode(data).text == text


def test_broken_utf16_is_an_encoding_error() -> None:
    lone_surrogate = codecs.BOM_UTF16_LE + "ab".encode("utf-16-le") + b"\x00\xd8c\x00"
    rejection = refuse(lone_surrogate)
    assert rejection.code == "encoding"
    assert "UTF-16 byte order mark but is not valid UTF-16" in rejection.reason
    assert "byte offset 6" in rejection.reason
    assert refuse(codecs.BOM_UTF16_LE + b"a\x00b").code == "encoding"


def test_random_bytes_never_crash() -> None:
    rng = random.Random(7)
    for _ in range(300):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 60)))
        result = decode_document(DocumentInput(name="r", data=data), max_bytes=LIMIT)
        if isinstance(result, Document):
            assert result.text.encode("utf-8")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("1_10ecb", "1_10ecb"),
        ("Caf\u00e9 report", "Caf\u00e9 report"),
        ("Cafe\u0301", "Caf\u00e9"),
        ("../../etc/passwd", "_.._etc_passwd"),
        ("..\\..\\boot.ini", "_.._boot.ini"),
        ("/absolute", "_absolute"),
        ("a\x00b", "a_b"),
        ("line\nbreak\r", "line_break"),
        ("\u202etxt.exe", "_txt.exe"),
        ("bad\ud800surrogate", "bad_surrogate"),
        ("..", "unnamed"),
        ("", "unnamed"),
        ("  \t ", "unnamed"),
        (". .\u3000.x", "x"),
        (".hidden", "hidden"),
    ],
)
def test_hostile_names_are_made_safe(name: str, expected: str) -> None:
    assert safe_name(name) == expected
    if "/" not in name:
        result = decode_document(DocumentInput(name=name, data=b"Some text."), max_bytes=LIMIT)
        assert result.name == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("notes.txt", "notes.txt"),
        ("reports/2024/q1.md", "reports/2024/q1.md"),
        ("../../etc/passwd", "etc/passwd"),
        ("/absolute/a.txt", "absolute/a.txt"),
        ("a//b/./c.txt", "a/b/c.txt"),
        ("a/../b.txt", "a/b.txt"),
        (".git/config.txt", "git/config.txt"),
        ("..\\..\\boot.ini", "_.._boot.ini"),
        ("dir\n/line\tbreak.txt", "dir/line_break.txt"),
        ("/", "unnamed"),
        ("", "unnamed"),
    ],
)
def test_document_names_keep_folders_and_extensions(name: str, expected: str) -> None:
    assert document_name(name) == expected
    result = decode_document(DocumentInput(name=name, data=b"Some text."), max_bytes=LIMIT)
    assert result.name == expected


def test_document_name_is_idempotent_bounded_and_never_escapes() -> None:
    rng = random.Random(5)
    alphabet = "ab./\\ \u3000\t\n\x00\u0301\u202e\ud800~"
    for _ in range(500):
        name = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 1300)))
        clean = document_name(name)
        assert document_name(clean) == clean
        assert 0 < len(clean) <= MAX_DOCUMENT_NAME_CHARS
        parts = clean.split("/")
        assert all(part and not part.startswith(".") for part in parts)
        assert not {"\\", "\x00"} & set(clean)


def test_long_names_are_cut_with_a_hash() -> None:
    first, second = "x" * 300 + "a", "x" * 300 + "b"
    assert len(safe_name(first)) == MAX_NAME_CHARS
    assert safe_name(first).startswith("x" * 190)
    assert safe_name(first) != safe_name(second)
    assert safe_name("y" * MAX_NAME_CHARS) == "y" * MAX_NAME_CHARS


def test_safe_name_is_idempotent_and_never_a_path() -> None:
    rng = random.Random(3)
    alphabet = "ab./\\ \u3000\t\n\x00\x7f\u0301\u00e9\u202e\ufeff\ud800\U0001f600~"
    for _ in range(500):
        name = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 260)))
        safe = safe_name(name)
        assert safe_name(safe) == safe
        assert 0 < len(safe) <= MAX_NAME_CHARS
        assert not {"/", "\\", "\x00"} & set(safe)
        assert not safe.startswith(".")
        assert safe.encode("utf-8")


def test_duplicates_collapse_and_clashes_are_refused() -> None:
    items = [
        DocumentInput(name="a", data=b"Alpha."),
        DocumentInput(name="b", data=b"Beta."),
        DocumentInput(name="a", data=b"Alpha."),
        DocumentInput(name="a", data=b"Another alpha."),
        DocumentInput(name="c", data=b""),
        DocumentInput(name="d", data=b"Alpha."),
    ]
    accepted, rejections = prepare_documents(items, max_bytes=LIMIT)
    assert [(d.name, d.text) for d in accepted] == [
        ("a", "Alpha."),
        ("b", "Beta."),
        ("d", "Alpha."),
    ]
    clash, empty = rejections
    assert (clash.name, clash.code) == ("a", "duplicate")
    assert "submitted twice with different content" in clash.reason
    assert "first one was kept" in clash.reason
    assert (empty.name, empty.code) == ("c", "empty")


def test_names_clash_after_sanitising() -> None:
    items = [
        DocumentInput(name="a\nb.txt", data=b"One."),
        DocumentInput(name="a_b.txt", data=b"Two."),
    ]
    accepted, rejections = prepare_documents(items, max_bytes=LIMIT)
    assert [d.text for d in accepted] == ["One."]
    assert [r.name for r in rejections] == ["a_b.txt"]


def write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def test_folders_are_walked_sorted_and_filtered(tmp_path: Path) -> None:
    write(tmp_path / "b.txt", "B")
    write(tmp_path / "a.md", "A")
    write(tmp_path / "sub" / "deeper" / "1_10ecb.txt", "Deep")
    write(tmp_path / "sub" / "C.TXT", "C")
    write(tmp_path / "sub" / "report.pdf", b"%PDF-1.4")
    write(tmp_path / "README", "no extension")
    write(tmp_path / ".hidden.txt", "hidden")
    write(tmp_path / ".git" / "config.txt", "hidden too")
    inputs, rejections = read_paths([tmp_path])
    assert [(i.name, i.data) for i in inputs] == [
        ("a.md", b"A"),
        ("b.txt", b"B"),
        ("sub/C.TXT", b"C"),
        ("sub/deeper/1_10ecb.txt", b"Deep"),
    ]
    assert [(r.name, r.code) for r in rejections] == [
        ("README", "unsupported"),
        ("sub/report.pdf", "unsupported"),
    ]
    assert "is a file without extension; only .md and .txt files are accepted" in (
        rejections[0].reason
    )
    assert "report.pdf' is a .pdf file; only .md and .txt files are accepted" in (
        rejections[1].reason
    )


def test_files_can_be_named_directly(tmp_path: Path) -> None:
    one = write(tmp_path / "docs" / "1_10ecb.txt", "One")
    inputs, rejections = read_paths([one, one, tmp_path / "missing.txt"])
    assert [i.name for i in inputs] == ["1_10ecb.txt"]
    (missing,) = rejections
    assert (missing.name, missing.code) == ("missing.txt", "unreadable")
    assert "missing.txt' does not exist" in missing.reason


def test_same_name_in_two_folders(tmp_path: Path) -> None:
    write(tmp_path / "a" / "report.txt", "First")
    write(tmp_path / "b" / "report.txt", "Second")
    write(tmp_path / "c" / "report.txt", "First")
    inputs, rejections = read_paths([tmp_path / "a", tmp_path / "b", tmp_path / "c"])
    assert [(i.name, i.data) for i in inputs] == [("report.txt", b"First")]
    (clash,) = rejections
    assert (clash.name, clash.code) == ("report.txt", "duplicate")
    assert f"'{tmp_path}/b/report.txt' would be document 'report.txt'" in clash.reason
    assert f"like '{tmp_path}/a/report.txt'" in clash.reason
    assert clash.sha256 is not None


def test_names_are_relative_to_the_folder_given(tmp_path: Path) -> None:
    write(tmp_path / "docs" / "a.txt", "A")
    write(tmp_path / "docs" / "sub" / "b.md", "B")
    by_folder, _ = read_paths([tmp_path / "docs"])
    by_parent, _ = read_paths([tmp_path])
    by_file, _ = read_paths([tmp_path / "docs" / "sub" / "b.md"])
    in_root, _ = read_paths([tmp_path / "docs" / "sub" / "b.md"], root=tmp_path / "docs")
    assert [i.name for i in by_folder] == ["a.txt", "sub/b.md"]
    assert [i.name for i in by_parent] == ["docs/a.txt", "docs/sub/b.md"]
    assert [i.name for i in by_file] == ["b.md"]
    assert [i.name for i in in_root] == ["sub/b.md"]


def test_symlink_leaving_the_folder_is_refused(tmp_path: Path) -> None:
    secret = write(tmp_path / "outside" / "secret.txt", "Secret")
    inbox = tmp_path / "inbox"
    write(inbox / "ok.txt", "Fine")
    (inbox / "escape.txt").symlink_to(secret)
    (inbox / "escape_dir").symlink_to(secret.parent, target_is_directory=True)
    (inbox / "relative.txt").symlink_to(Path("..") / "outside" / "secret.txt")
    inputs, rejections = read_paths([inbox])
    assert [i.name for i in inputs] == ["ok.txt"]
    assert sorted((r.name, r.code) for r in rejections) == [
        ("escape.txt", "unreadable"),
        ("escape_dir", "unreadable"),
        ("relative.txt", "unreadable"),
    ]
    for rejection in rejections:
        assert "symbolic link pointing outside the folder" in rejection.reason
        assert "secret" not in rejection.reason


def test_symlinks_inside_the_folder_are_read_once(tmp_path: Path) -> None:
    write(tmp_path / "real" / "doc.txt", "Doc")
    (tmp_path / "alias.txt").symlink_to(tmp_path / "real" / "doc.txt")
    (tmp_path / "zlink").symlink_to(tmp_path / "real", target_is_directory=True)
    (tmp_path / "broken.txt").symlink_to(tmp_path / "nowhere.txt")
    (tmp_path / "loop.txt").symlink_to(tmp_path / "loop.txt")
    inputs, rejections = read_paths([tmp_path])
    assert [(i.name, i.data) for i in inputs] == [("alias.txt", b"Doc")]
    assert sorted((r.name, r.code) for r in rejections) == [
        ("broken.txt", "unreadable"),
        ("loop.txt", "unreadable"),
    ]
    assert all("broken symbolic link" in r.reason for r in rejections)


def test_unreadable_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    locked = write(tmp_path / "locked.txt", "Locked")
    write(tmp_path / "open.txt", "Open")
    real_open = os.open

    def deny(path: os.PathLike[str] | str, flags: int, *args: int) -> int:
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(documents.os, "open", deny)
    inputs, rejections = read_paths([tmp_path])
    assert [i.name for i in inputs] == ["open.txt"]
    (rejection,) = rejections
    assert (rejection.name, rejection.code) == ("locked.txt", "unreadable")
    assert rejection.reason == f"File '{locked}' cannot be read: Permission denied."


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_file_without_read_permission_is_refused(tmp_path: Path) -> None:
    locked = write(tmp_path / "locked.txt", "Locked")
    locked.chmod(0)
    _, rejections = read_paths([tmp_path])
    assert [(r.name, r.code) for r in rejections] == [("locked.txt", "unreadable")]


def test_special_files_are_refused_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.txt")
    inputs, rejections = read_paths([tmp_path])
    assert inputs == []
    (rejection,) = rejections
    assert (rejection.name, rejection.code) == ("pipe.txt", "unreadable")
    assert "is not a regular file" in rejection.reason


def test_files_over_the_limit_are_not_read(tmp_path: Path) -> None:
    write(tmp_path / "big.txt", "x" * 2_000)
    write(tmp_path / "small.txt", "x")
    inputs, rejections = read_paths([tmp_path], max_bytes=LIMIT)
    assert [i.name for i in inputs] == ["small.txt"]
    assert [(r.name, r.code, r.size, r.sha256) for r in rejections] == [
        ("big.txt", "too_large", 2_000, None)
    ]
    assert "2,000 bytes, over the limit of 1,000 bytes" in rejections[0].reason


def test_hostile_file_names_are_made_safe(tmp_path: Path) -> None:
    write(tmp_path / "tab\there\u202e.txt", "Tab")
    write(tmp_path / "..dots.md", "Dots")
    inputs, _ = read_paths([tmp_path / "tab\there\u202e.txt", tmp_path / "..dots.md"])
    assert [i.name for i in inputs] == ["tab_here_.txt", "dots.md"]
