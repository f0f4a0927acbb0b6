"""safelog.DescriptorStream: one whole os.write per call, no buffer, no lock."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from safelog import DescriptorStream


def _read_all(fd: int, into: bytearray) -> None:
    while chunk := os.read(fd, 65536):
        into.extend(chunk)


def test_write_reaches_the_descriptor_at_once(tmp_path: Path) -> None:
    """Text is on the file as soon as write returns: nothing waits in Python."""
    path = tmp_path / "out.log"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    stream = DescriptorStream(fd, encoding="utf-8", at_start=True)
    assert 6 == stream.write("héllo\n")
    assert "héllo\n".encode() == path.read_bytes()
    os.close(fd)


def test_partial_writes_are_continued_until_whole() -> None:
    """A record larger than a pipe's buffer arrives whole, in order."""
    read_fd, write_fd = os.pipe()
    received = bytearray()
    reader = threading.Thread(target=_read_all, args=(read_fd, received))
    reader.start()
    stream = DescriptorStream(write_fd, encoding="ascii")
    text = "".join(f"{n:07d}\n" for n in range(200_000))  # 1.6 MB
    assert len(text) == stream.write(text)
    os.close(write_fd)
    reader.join(timeout=30)
    os.close(read_fd)
    assert text.encode() == bytes(received)


def test_byte_order_mark_written_once_at_start(tmp_path: Path) -> None:
    """utf-16 writes its byte order mark once, at the start of the file only."""
    path = tmp_path / "out.log"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    stream = DescriptorStream(fd, encoding="utf-16", at_start=True)
    stream.write("a\n")
    stream.write("b\n")
    os.close(fd)
    assert "a\nb\n".encode("utf-16") == path.read_bytes()


def test_no_byte_order_mark_when_not_at_start(tmp_path: Path) -> None:
    """Appending to a file that has content never inserts a byte order mark."""
    path = tmp_path / "out.log"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    DescriptorStream(fd, encoding="utf-16").write("a\n")
    os.close(fd)
    assert "a\n".encode("utf-16-le") == path.read_bytes()


def test_errors_handler_applies() -> None:
    """Unencodable text follows the errors handler, as with open()."""
    read_fd, write_fd = os.pipe()
    DescriptorStream(write_fd, encoding="ascii", errors="replace").write("é\n")
    os.close(write_fd)
    assert b"?\n" == os.read(read_fd, 100)
    os.close(read_fd)


def test_strict_errors_raise() -> None:
    """With errors='strict', unencodable text raises UnicodeEncodeError."""
    read_fd, write_fd = os.pipe()
    stream = DescriptorStream(write_fd, encoding="ascii")
    with pytest.raises(UnicodeEncodeError):
        stream.write("é")
    os.close(read_fd)
    os.close(write_fd)


def test_closed_stream_refuses_writes_and_leaves_foreign_fd_open() -> None:
    """Closing a stream without an owner leaves the descriptor open; writing to
    a closed stream raises ValueError, never writes to a reused descriptor."""
    read_fd, write_fd = os.pipe()
    stream = DescriptorStream(write_fd, encoding="utf-8")
    stream.close()
    stream.close()  # idempotent
    with pytest.raises(ValueError, match="closed file"):
        stream.write("x")
    os.write(write_fd, b"still open")
    assert b"still open" == os.read(read_fd, 100)
    os.close(read_fd)
    os.close(write_fd)


def test_closing_closes_the_owner(tmp_path: Path) -> None:
    """A stream made from an open() file closes that file's descriptor."""
    text_file = open(tmp_path / "out.log", "a", encoding="utf-8")  # noqa: SIM115
    stream = DescriptorStream.from_text_file(text_file, "a")
    fd = stream.fileno()
    stream.close()
    with pytest.raises(OSError):
        os.fstat(fd)


def test_looks_like_a_text_file(tmp_path: Path) -> None:
    """name, mode, encoding, errors, fileno and writable answer as a file's."""
    text_file = open(  # noqa: SIM115
        tmp_path / "out.log", "a", encoding="latin-1", errors="replace"
    )
    stream = DescriptorStream.from_text_file(text_file, "a")
    assert (str(tmp_path / "out.log"), "a", "latin-1", "replace") == (
        stream.name,
        stream.mode,
        stream.encoding,
        stream.errors,
    )
    assert stream.writable()
    assert not stream.isatty()
    assert isinstance(stream.fileno(), int)
    stream.close()


def test_child_stream_replaces_only_plain_text_files(tmp_path: Path) -> None:
    """A forked child writes straight to the descriptor only for a text file
    or pipe stream; a gzip or in-memory stream is kept, since its bytes differ
    from the encoded text (or it has no descriptor)."""
    import gzip
    import io

    from safelog._handlers import _stream_for_child

    with (
        open(tmp_path / "plain.log", "w", encoding="utf-8") as plain,
        gzip.open(tmp_path / "packed.log.gz", "wt", encoding="utf-8") as packed,
    ):
        replaced = _stream_for_child(plain)
        assert replaced is not None
        assert (plain.fileno(), "utf-8") == (replaced.fileno(), replaced.encoding)
        assert _stream_for_child(packed) is None
        assert _stream_for_child(io.StringIO()) is None


def test_child_stream_at_start_of_file_writes_byte_order_mark(tmp_path: Path) -> None:
    """A child's utf-16 stream on a file nothing was written to yet starts it
    with a byte order mark, as the parent's stream would have."""
    from safelog._handlers import _stream_for_child

    path = tmp_path / "wide.log"
    with open(path, "w", encoding="utf-16") as wide:
        replaced = _stream_for_child(wide)
        assert replaced is not None
        replaced.write("a\n")
    assert "a\n".encode("utf-16") == path.read_bytes()
