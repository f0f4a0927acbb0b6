"""A text stream with no buffer and no lock: each write is one ``os.write``.

This is what safelog's handlers write through.  Because nothing is buffered in
Python, a forked child inherits no pending bytes to write a second time, and
because there is no io lock, a child cannot inherit one held by a vanished
thread.  On a descriptor opened with ``O_APPEND``, the kernel places each
write at the end of the file, so processes appending to one file never
overwrite or tear each other's records, as long as their writes succeed (a
write that fails part way is described in :class:`DescriptorStream`).
"""

from __future__ import annotations

import codecs
import io
import itertools
import os
import select
import socket
import stat
from collections.abc import Callable, Sequence
from typing import IO, Any

# Writes up to this size to a pipe are never interleaved with other writers'.
_PIPE_BUF: int = getattr(select, "PIPE_BUF", 512)  # 512: the POSIX minimum
_STATELESS_CODECS = frozenset({"utf-8", "ascii", "iso8859-1"})
# write_records() writes long records (tracebacks) to a file in several
# writes of whole records, each at most about this long (a longer record
# alone), rather than copying them all into one buffer.
_JOINED_MAX = 1 << 20


class DescriptorStream(io.TextIOBase):
    """Write text to a file descriptor, one whole ``os.write`` per call.

    Not thread-safe on its own: the handler that owns it serialises writes
    with its lock.  A partial write (a pipe, a signal) is continued until the
    whole text is written, so concurrent writers to a pipe may interleave only
    when a single record exceeds ``PIPE_BUF``.  A non-blocking descriptor
    that cannot take more is waited for, up to ``write_timeout`` (a socket's
    timeout; None: as long as it takes).  When a write fails after part of a
    record went out (a full disk, a file size limit), the rest of that
    record is kept and written first by the next write or flush, so none of
    this process's records is glued onto a torn one; the error is raised for
    the record it concerns.  Another process appending to the same file is
    not held back: if its write succeeds meanwhile (it has room, or space
    was freed), its record lands right after the first part of the torn one,
    whose rest comes later.  Nothing can prevent that short of cutting the
    file back, which could cut that other record.  A forked child never
    writes the rest of a record its parent began (see
    :meth:`forget_unwritten`).

    Besides writing, it does what a text file from ``open()`` does with
    ``tell()``, ``seek()``, ``seekable()``, ``readable()``, ``read()`` and
    ``readline()``; ``buffer`` is the unbuffered raw file, and
    ``line_buffering`` is False and ``write_through`` True (every write
    reaches the descriptor at once).
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
        write_timeout: float | None = None,
    ) -> None:
        """``owner`` is the file object that owns ``fd`` (closed with this
        stream); without one, closing this stream leaves ``fd`` open.
        ``at_start`` says that nothing was written to the file yet, so an
        encoding with a byte order mark (utf-16, utf-8-sig) writes it first,
        as ``open()`` does.  ``write_timeout`` bounds the wait for a
        non-blocking descriptor to take data, as a socket's timeout does."""
        super().__init__()
        self._fd = fd
        self._owner = owner
        self._write_timeout = write_timeout
        # The rest of a record a failed write left half written (see class).
        self._unwritten = b""
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

    @property
    def buffer(self) -> IO[bytes]:
        """The raw file under this stream: unbuffered, so bytes written to
        it reach the descriptor at once, as this stream's text does."""
        self._check_open()
        if self._owner is None:
            self._owner = io.FileIO(
                self._fd, self.mode.replace("+", "") or "w", closefd=False
            )
        return self._owner

    @property
    def line_buffering(self) -> bool:
        return False

    @property
    def write_through(self) -> bool:
        return True

    def write(self, text: str) -> int:
        """Encode ``text`` and write it whole; return ``len(text)``."""
        data = self._encode(text)  # checks that the stream is open, and text
        written = -1
        if not self._unwritten:  # the usual case, inline: all of it at once
            try:
                written = os.write(self._fd, data)
            except OSError:
                written = -1  # nothing went out: the careful way tries again
            if written == len(data):
                return len(text)
        self._write_encoded(data, written=written)
        return len(text)

    def write_records(
        self,
        texts: Sequence[str],
        *,
        failed: Callable[[int], object],
        reported: type[BaseException] = Exception,
    ) -> None:
        """Write ``texts`` (records, each with its line end) in order, each
        whole, in as few ``os.write`` calls as keep each whole: the bytes
        :meth:`write` writes for each in turn.

        On a regular file they go in one write (up to about 1 MiB; more in
        several, each of whole records), which ``O_APPEND``, where set,
        places at the end in one piece.  On a pipe, socket or terminal they
        go in writes of at most ``PIPE_BUF`` bytes, which the kernel never
        interleaves with another process's writes; a longer text goes
        alone, as :meth:`write` writes it.  So no other process's write lands inside
        one of them, unless a write fails part way (see the class).

        The error of a text that does not encode, or of a write that leaves
        texts unwritten or half written, is not raised: ``failed(index)`` is
        called for each text it concerns, from inside the ``except`` clause
        (so ``sys.exc_info()`` is that error, as
        ``logging.Handler.handleError`` expects), and the other texts are
        still written.  ``reported`` is what counts as such an error;
        anything else propagates, the rest of a half-written text kept as
        :meth:`write` keeps it.  Not thread-safe, as :meth:`write` is not.
        """
        limit = self._whole_write_limit()
        if limit is None:  # a regular file: O_APPEND keeps any write whole
            if sum(map(len, texts)) <= _JOINED_MAX:
                data = self._encode_joined(texts)
                if data is not None:

                    def record_ends() -> list[int]:  # on a failed write only
                        lengths = [len(self._encode(text)) for text in texts]
                        return list(itertools.accumulate(lengths))

                    indexes = range(len(texts))
                    self._write_joined(data, record_ends, indexes, failed, reported)
                    return
            limit = _JOINED_MAX
        # One by one: a text that does not encode fails alone, a pipe gets
        # writes it keeps whole, and long texts are not copied all at once.
        pieces: list[bytes] = []
        in_pieces: list[int] = []  # the index of the text each piece encodes
        size = 0
        for index, text in enumerate(texts):
            try:
                data = self._encode(text)
            except reported:
                failed(index)
                continue
            if pieces and size + len(data) > limit:
                self._write_pieces(pieces, in_pieces, failed, reported)
                pieces, in_pieces, size = [], [], 0
            pieces.append(data)
            in_pieces.append(index)
            size += len(data)
        if pieces:
            self._write_pieces(pieces, in_pieces, failed, reported)

    def _write_pieces(
        self,
        pieces: list[bytes],
        indexes: list[int],
        failed: Callable[[int], object],
        reported: type[BaseException],
    ) -> None:
        data = pieces[0] if len(pieces) == 1 else b"".join(pieces)
        ends = list(itertools.accumulate(map(len, pieces)))
        self._write_joined(data, lambda: ends, indexes, failed, reported)

    def _write_joined(
        self,
        data: bytes,
        record_ends: Callable[[], list[int]],
        indexes: Sequence[int],
        failed: Callable[[int], object],
        reported: type[BaseException],
    ) -> None:
        """Write ``data``, the texts ``indexes`` of :meth:`write_records`
        encoded and joined, ending at the offsets ``record_ends()`` gives;
        ``failed`` is called for each text not written whole, and only for
        those."""
        try:
            self._write_encoded(data, record_ends)
        except reported as error:
            written = _written_by(error)
            for index, end in zip(indexes, record_ends()):
                if end > written:
                    failed(index)

    def _encode(self, text: str) -> bytes:
        """The bytes :meth:`write` would write for ``text``, for a caller that
        joins several texts into one :meth:`_write_encoded`.

        Advances the encoder as :meth:`write` does (a byte order mark comes
        out once, with the first text), so encoding texts one by one and
        writing them joined gives the bytes of writing them one by one."""
        self._check_open()
        if not self._writable:
            raise io.UnsupportedOperation("not writable")
        try:
            if self._translate_newlines:
                text = text.replace("\n", os.linesep)
            if self._joins_encodings:  # no state to keep: the faster str.encode
                return text.encode(self._encoding, self._errors)
            return self._encoder.encode(text)
        except (AttributeError, TypeError):
            if isinstance(text, str):
                raise
            raise TypeError(
                f"write() argument must be str, not {type(text).__name__}"
            ) from None

    def _encode_joined(self, texts: Sequence[str]) -> bytes | None:
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

    def _write_encoded(
        self,
        data: bytes,
        record_ends: Callable[[], list[int]] | None = None,
        *,
        written: int = -1,
    ) -> None:
        """Write ``data`` (from :meth:`_encode`, which checked that the
        stream is open; one record or several joined) whole, in one
        ``os.write`` unless the kernel takes less.

        When the write fails part way, the error is raised with the number
        of bytes of ``data`` written in ``error.safelog_written``, and the
        rest of the record it stopped in is kept for the next write (see
        the class).  ``record_ends`` gives the offsets where the records in
        ``data`` end (called only then); without it ``data`` is one record.
        ``written`` says how much of ``data`` one ``os.write`` already took
        (negative: none was tried, or it failed with nothing written).
        """
        if written < 0:
            if self._unwritten:
                try:
                    done, failure = self._write_all(self._unwritten)
                except BaseException as interruption:  # see _write_all
                    self._unwritten = self._unwritten[_written_by(interruption) :]
                    raise
                self._unwritten = self._unwritten[done:]
                if failure is not None:
                    failure.safelog_written = 0  # type: ignore[attr-defined]
                    raise failure
            try:  # the usual case, before any bookkeeping: all of it at once
                written = os.write(self._fd, data)
            except BlockingIOError:
                written = 0  # a full non-blocking descriptor: wait below
            except OSError as error:
                error.safelog_written = 0  # type: ignore[attr-defined]
                raise
            if written == len(data):
                return
        try:
            done, failure = self._write_all(data, written)
        except BaseException as interruption:  # see _write_all
            self._keep_rest(data, _written_by(interruption), record_ends)
            raise
        if failure is None:
            return
        self._keep_rest(data, done, record_ends)
        failure.safelog_written = done  # type: ignore[attr-defined]
        raise failure

    def _keep_rest(
        self, data: bytes, done: int, record_ends: Callable[[], list[int]] | None
    ) -> None:
        """The write of ``data`` stopped after ``done`` bytes: keep the rest
        of the record it stopped in, to be written first next time."""
        ends = record_ends() if record_ends is not None else [len(data)]
        end = next((end for end in ends if end > done), len(data))
        start = max([0, *(e for e in ends if e <= done)])
        if start < done:  # the record it stopped in is half written
            self._unwritten = data[done:end]

    def _write_all(self, data: bytes, done: int = 0) -> tuple[int, OSError | None]:
        """Write ``data`` from offset ``done`` on, continuing after a partial
        write and waiting while a non-blocking descriptor is full; return
        the bytes written and the error that stopped the write short, if
        any.  A signal handler that raises between two pieces (Ctrl-C while
        a pipe is full) stops the write: the exception goes on, carrying the
        bytes written in ``safelog_written``, so that the rest is kept."""
        view = memoryview(data)
        try:
            while done < len(view):
                try:
                    done += os.write(self._fd, view[done:])
                except BlockingIOError:
                    try:
                        self._wait_until_writable()
                    except OSError as error:
                        return done, error
                except OSError as error:
                    return done, error
        except BaseException as interruption:
            interruption.safelog_written = done  # type: ignore[attr-defined]
            raise
        return done, None

    def _wait_until_writable(self) -> None:
        """Wait for a non-blocking descriptor to take data, at most the write
        timeout, as a socket with that timeout does."""
        timeout = self._write_timeout
        if timeout is not None and timeout <= 0:
            raise BlockingIOError(11, "write would block")
        poller = select.poll()
        poller.register(self._fd, select.POLLOUT)
        if not poller.poll(None if timeout is None else timeout * 1000):
            raise socket.timeout("timed out")

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

    def flush(self) -> None:
        """Try to write the rest of a record a failed write left half
        written, if any (its failure was raised already: it stays for the
        next write if it fails again); every other write went to the kernel
        already."""
        if self.closed:
            raise ValueError("I/O operation on closed file.")
        if self._unwritten:
            done, _ = self._write_all(self._unwritten)
            self._unwritten = self._unwritten[done:]

    def forget_unwritten(self) -> None:
        """In a forked child: the parent writes the rest of its record."""
        self._unwritten = b""

    # -- what a text file from open() does besides writing ---------------------

    def seekable(self) -> bool:
        self._check_open()
        try:
            os.lseek(self._fd, 0, os.SEEK_CUR)
        except OSError:
            return False
        return True

    def tell(self) -> int:
        self._check_open()
        if not self.seekable():
            raise io.UnsupportedOperation("underlying stream is not seekable")
        return os.lseek(self._fd, 0, os.SEEK_CUR) + len(self._unwritten)

    def seek(self, cookie: int, whence: int = os.SEEK_SET) -> int:
        """As a text file's ``seek``: to a position ``tell()`` gave, or to the
        start or end (an ``O_APPEND`` descriptor still writes at the end)."""
        self._check_open()
        if whence not in (os.SEEK_SET, os.SEEK_CUR, os.SEEK_END):
            raise ValueError(f"invalid whence ({whence}, should be 0, 1 or 2)")
        if not self.seekable():
            raise io.UnsupportedOperation("underlying stream is not seekable")
        if whence == os.SEEK_CUR and cookie != 0:
            raise io.UnsupportedOperation("can't do nonzero cur-relative seeks")
        if whence == os.SEEK_END and cookie != 0:
            raise io.UnsupportedOperation("can't do nonzero end-relative seeks")
        if whence == os.SEEK_SET and cookie < 0:
            raise ValueError(f"negative seek position {cookie!r}")
        self.flush()
        position = os.lseek(self._fd, cookie, whence)
        # As TextIOWrapper: at the start a byte order mark is due again.
        if position == 0:
            self._encoder.reset()
        else:
            self._encoder.setstate(0)
        return position

    def readable(self) -> bool:
        self._check_open()
        return isinstance(self.mode, str) and ("r" in self.mode or "+" in self.mode)

    def read(self, size: int | None = -1) -> str:
        """Read up to ``size`` characters (all, if negative or None) from the
        current position, decoded, with universal newlines."""
        return self._read(size, stop_at_newline=False)

    def readline(self, size: int | None = -1) -> str:  # type: ignore[override]
        return self._read(size, stop_at_newline=True)

    def _read(self, size: int | None, *, stop_at_newline: bool) -> str:
        self._check_open()
        if not self.readable():
            raise io.UnsupportedOperation("not readable")
        self.flush()
        decoder = io.IncrementalNewlineDecoder(
            codecs.getincrementaldecoder(self._encoding)(self._errors), translate=True
        )
        if (size is None or size < 0) and not stop_at_newline:
            chunks = iter(lambda: os.read(self._fd, 65536), b"")
            return decoder.decode(b"".join(chunks), final=True)
        # A byte at a time, so that the position stays where the text ends.
        text = ""
        while not (size is not None and 0 <= size <= len(text)):
            if stop_at_newline and text.endswith("\n"):
                break
            byte = os.read(self._fd, 1)
            text += decoder.decode(byte, final=not byte)
            if not byte:
                break
        return text

    def _check_open(self) -> None:
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


def _written_by(interruption: BaseException) -> int:
    """The bytes written before ``interruption`` stopped a write."""
    written: int = getattr(interruption, "safelog_written", 0)
    return written
