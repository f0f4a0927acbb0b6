"""A text stream with no buffer and no lock: each write is one ``os.write``.

This is what safelog's handlers write through.  Because nothing is buffered in
Python, a forked child inherits no pending bytes to write a second time, and
because there is no io lock, a child cannot inherit one held by a vanished
thread.  On a descriptor opened with ``O_APPEND``, the kernel places each
write at the end of the file, so processes appending to one file never
overwrite or tear each other's records.
"""

from __future__ import annotations

import codecs
import io
import os
import select
import stat
from typing import IO, Any

# Writes up to this size to a pipe are never interleaved with other writers'.
_PIPE_BUF: int = getattr(select, "PIPE_BUF", 512)  # 512: the POSIX minimum
_STATELESS_CODECS = frozenset({"utf-8", "ascii", "iso8859-1"})


class DescriptorStream(io.TextIOBase):
    """Write text to a file descriptor, one whole ``os.write`` per call.

    Not thread-safe on its own: the handler that owns it serialises writes
    with its lock.  A partial write (a pipe, a signal) is continued until the
    whole text is written, so concurrent writers to a pipe may interleave only
    when a single record exceeds ``PIPE_BUF``.
    """

    def __init__(
        self,
        fd: int,
        *,
        encoding: str,
        errors: str = "strict",
        name: Any = None,
        mode: str = "w",
        owner: IO[Any] | None = None,
        at_start: bool = False,
    ) -> None:
        """``owner`` is the file object that owns ``fd`` (closed with this
        stream); without one, closing this stream leaves ``fd`` open.
        ``at_start`` says that nothing was written to the file yet, so an
        encoding with a byte order mark (utf-16, utf-8-sig) writes it first,
        as ``open()`` does."""
        super().__init__()
        self._fd = fd
        self._owner = owner
        self._encoding = encoding
        self._errors = errors
        self.name = name
        self.mode = mode
        # As a text file opened for reading: writing raises UnsupportedOperation.
        self._writable = not isinstance(mode, str) or any(c in mode for c in "wax+")
        # Incremental, like TextIOWrapper's: a byte order mark is written once
        # at the start of a file, never before every record.
        self._encoder = codecs.getincrementalencoder(encoding)(errors)
        if not at_start:
            self._encoder.setstate(0)
        # open() in text mode writes "\n" as os.linesep; so do we.
        self._translate_newlines = os.linesep != "\n"
        self._write_limit: int | None = 0  # 0: not looked up yet
        # Encoders that keep no state: texts encoded one by one or joined
        # give the same bytes, and a text that fails to encode changes nothing.
        self._joins_encodings = codecs.lookup(encoding).name in _STATELESS_CODECS

    @classmethod
    def from_text_file(cls, text_file: io.TextIOWrapper, mode: str) -> DescriptorStream:
        """Take over the descriptor of a text file just returned by ``open()``,
        dropping its buffer, with the encoding and errors it chose."""
        encoding, name = text_file.encoding, text_file.name
        errors = text_file.errors or "strict"
        raw = text_file.detach().detach()  # type: ignore[attr-defined]
        fd = raw.fileno()
        try:
            at_start = os.lseek(fd, 0, os.SEEK_CUR) == 0
        except OSError:  # a FIFO, a pipe, a terminal: no byte order mark,
            at_start = False  # as open() writes none where it cannot tell()
        return cls(
            fd,
            encoding=encoding,
            errors=errors,
            name=name,
            mode=mode,
            owner=raw,
            at_start=at_start,
        )

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self._encoding

    @property
    def errors(self) -> str:  # type: ignore[override]
        return self._errors

    def fileno(self) -> int:
        return self._fd

    def writable(self) -> bool:
        return self._writable

    def isatty(self) -> bool:
        return os.isatty(self._fd)

    def write(self, text: str) -> int:
        """Encode ``text`` and write it whole; return ``len(text)``."""
        data = self._encode(text)  # checks that the stream is open
        written = os.write(self._fd, data)
        if written < len(data):
            self._write_rest(memoryview(data)[written:])
        return len(text)

    def _encode(self, text: str) -> bytes:
        """The bytes :meth:`write` would write for ``text``, for a caller that
        joins several texts into one :meth:`_write_encoded`.

        Advances the encoder as :meth:`write` does (a byte order mark comes
        out once, with the first text), so encoding texts one by one and
        writing them joined gives the bytes of writing them one by one."""
        if self.closed:
            raise ValueError("I/O operation on closed file.")
        if not self._writable:
            raise io.UnsupportedOperation("not writable")
        if self._translate_newlines:
            text = text.replace("\n", os.linesep)
        if self._joins_encodings:  # no state to keep: the faster str.encode
            return text.encode(self._encoding, self._errors)
        return self._encoder.encode(text)

    def _encode_joined(self, texts: list[str]) -> bytes | None:
        """``b"".join(self._encode(text) for text in texts)``, encoded in one
        go; or None, having encoded nothing, when that could differ: the
        encoding keeps state between texts (a byte order mark), or a text
        does not encode (the caller then encodes them one by one, to find
        which)."""
        if not self._joins_encodings:
            return None
        try:
            return self._encode("".join(texts))
        except Exception:  # stateless: nothing was consumed
            return None

    def _write_encoded(self, data: bytes) -> None:
        """Write ``data`` (from :meth:`_encode`) whole, in one ``os.write``
        unless the kernel takes less."""
        if self.closed:
            raise ValueError("I/O operation on closed file.")
        written = os.write(self._fd, data)
        if written < len(data):
            self._write_rest(memoryview(data)[written:])

    def _whole_write_limit(self) -> int | None:
        """The largest write that other processes writing to this descriptor
        cannot interleave with: ``PIPE_BUF`` for a pipe, socket or terminal,
        None (no limit) for a regular file, where ``O_APPEND`` places each
        write whole at the end."""
        limit = self._write_limit
        if limit == 0:
            try:
                regular = stat.S_ISREG(os.fstat(self._fd).st_mode)
            except OSError:
                regular = False
            limit = None if regular else _PIPE_BUF
            self._write_limit = limit
        return limit

    def _write_rest(self, rest: memoryview) -> None:
        while rest:
            rest = rest[os.write(self._fd, rest) :]

    def flush(self) -> None:
        """Nothing to flush: every write went to the kernel already."""
        if self.closed:
            raise ValueError("I/O operation on closed file.")

    def close(self) -> None:
        if self.closed:
            return
        try:
            if self._owner is not None:
                self._owner.close()
        finally:
            super().close()

    def __repr__(self) -> str:
        return (
            f"<safelog.DescriptorStream name={self.name!r} fd={self._fd} "
            f"encoding={self._encoding!r}>"
        )
