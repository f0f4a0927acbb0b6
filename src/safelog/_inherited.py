"""What a forked child does with a buffered stream it inherited.

A parent thread may have held the lock inside an ``io.BufferedWriter`` at the
instant of fork (CPython leaves it held in the child: gh-84579), and the bytes
waiting in the buffer are the parent's, which the parent writes.  A child that
flushes such a stream, as interpreter exit does for ``sys.stderr``, either
waits forever (or, at shutdown, a second and then aborts) or writes the
parent's bytes a second time.  ``reset_text_stream`` gives the very same
stream objects a fresh lock and an empty buffer instead.
"""

from __future__ import annotations

import io

__all__ = ["reset_text_stream"]


def _buffer_size(raw: object) -> int:
    # What open() chose: the descriptor's block size, as FileIO recorded it.
    size = getattr(raw, "_blksize", None)
    return size if isinstance(size, int) and size > 1 else io.DEFAULT_BUFFER_SIZE


def _can_tell(buffer: io.BufferedWriter) -> bool:
    # TextIOWrapper.__init__ calls tell() when the buffer says it is seekable,
    # and an error there leaves the wrapper unusable.  FileIO caches
    # seekable() from the first call, so a descriptor that was a file then
    # and is a pipe now (dup2 by a daemon) answers True and fails to tell().
    try:
        if buffer.seekable():
            buffer.tell()
    except (OSError, ValueError):
        return False
    return True


def reset_text_stream(
    stream: object, *, newline: str | None, known_newline: bool
) -> None:
    """Give ``stream`` (a text stream over an ``io.BufferedWriter``) a fresh
    buffer lock and no pending bytes, keeping the very same objects.

    Called in a forked child only, before any other thread exists there.  A
    parent thread may have held the buffer's lock at fork (CPython gh-84579):
    ``BufferedWriter.__init__`` allocates a new one and empties the buffer,
    whose bytes the parent writes.  Nothing here may take that lock first.
    The text layer has no lock but may hold the parent's text not yet passed
    to the buffer; it is re-initialised only when ``known_newline`` says that
    its ``newline`` setting, which Python does not expose, is known.
    """
    buffer = getattr(stream, "buffer", None)
    if type(buffer) is not io.BufferedWriter:
        return  # unbuffered (python -u), a StringIO, or a stream we don't know
    raw = buffer.raw
    if raw.closed:  # reads the raw object's attribute: no buffer lock taken
        return
    buffer.__init__(raw, _buffer_size(raw))  # type: ignore[misc]
    if type(stream) is not io.TextIOWrapper or not known_newline:
        return
    if stream.write_through:
        return  # every write passed its text to the buffer at once
    if not _can_tell(buffer):
        return
    stream.__init__(  # type: ignore[misc]
        buffer,
        encoding=stream.encoding,
        errors=stream.errors,
        newline=newline,
        line_buffering=stream.line_buffering,
        write_through=stream.write_through,
    )
