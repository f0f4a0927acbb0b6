"""Fork-safe drop-in replacements for ``logging.StreamHandler`` and
``logging.FileHandler``.

Outside of fork they behave, and write, exactly as the standard classes they
subclass.  Across fork they add what the standard classes lack:

* the handler lock is taken (within the shared fork timeout) before a fork, so
  the child copies the handler in a consistent state, and the child gets a
  fresh lock;
* no record is ever pending in a Python buffer, so none is written twice;
* a child never touches the io lock inside an inherited buffered stream, which
  a parent thread may have held at the instant of fork (CPython gh-84579).
"""

from __future__ import annotations

import collections
import contextlib
import functools
import io
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, TextIO, cast

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

from . import _atfork
from ._inherited import reset_text_stream
from ._stream import DescriptorStream

if TYPE_CHECKING:
    _StreamHandlerBase = logging.StreamHandler[TextIO]
    _FileHandlerBase = logging.FileHandler
else:
    _StreamHandlerBase = logging.StreamHandler
    _FileHandlerBase = logging.FileHandler

__all__ = ["FileHandler", "StreamHandler"]


# Records logged re-entrantly that one call of handle() writes after its own
# before it gives up: a filter or formatter that logs on every record would
# otherwise keep it writing for ever (the standard library recurses until
# RecursionError there).
_REENTRANT_MAX = 1000

# 3.13's Handler.handle() holds the lock by `with self.lock`; before, it calls
# self.acquire() and self.release(), which a subclass may override and which
# skip a lock that createLock() set to None.  safelog's handle() does the same.
_HANDLE_USES_WITH_LOCK = sys.version_info >= (3, 13)


# Bound once: handle() compares it with the handler's pid on every record.
_getpid = os.getpid


def _held_by_this_thread(lock: object) -> bool:
    is_owned = getattr(lock, "_is_owned", None)  # an RLock's; a Lock has none
    return callable(is_owned) and bool(is_owned())


class ForkSafeHandler(logging.Handler):
    """What safelog's handlers share: the fork steps (see ``_atfork``), and
    a ``handle()`` that writes a record logged re-entrantly after the record
    in progress instead of inside its write."""

    _lock_held_for_fork = False
    # Whether the forking thread held the handler lock already when
    # before_fork() took it: it forked from inside this handler (a signal
    # handler that forks, a formatter that does).
    _lock_held_by_forker = False
    _quiet_at_fork = True
    # The stream a forked child stopped writing through.  Kept referenced, as
    # the parent keeps it: dropping the last reference would finalize it in
    # the child, closing the descriptor the child now writes to, flushing the
    # parent's pending bytes and taking an io lock a vanished thread may hold.
    _inherited_stream: object = None
    # Whether the thread holding the handler lock is inside emit() now, and
    # the records that thread logged meanwhile through this handler (from a
    # signal handler, a formatter or a filter that logs): only that thread
    # appends, the handler lock keeps the others out.
    _emitting = False
    _reentrant: collections.deque[logging.LogRecord]
    # The inherited stream a child forked from inside emit() resets once that
    # emit() returns (see _write_past_inherited_stream).
    _stream_to_reset: object = None
    # Whether _catch_up() has work: records in _reentrant, a stream to reset.
    # One flag, so that a record's path reads one attribute after emit().
    _owed_after_emit = False
    # The process whose fork steps this handler last took: another one means
    # a fork that ran no at-fork hook (see _notice_hookless_fork).
    _owner_pid = 0
    # Whether handle() must lock through acquire() and release(), which
    # this class overrides (see __init_subclass__).
    _locks_through_methods = False

    @classmethod
    def _safelog_state(cls, handler: Any) -> dict[str, Any]:
        """The instance attributes this class keeps beyond those the standard
        class it replaces sets, with fresh values for ``handler``, made from
        what the standard ``__init__`` set (``baseFilename``, ``stream``...).

        The one list of them: a new handler gets them in its ``__init__``
        (:meth:`_register_for_fork`), and ``install()`` gives them to a
        standard handler it converts in place, before its class changes (so
        this is a class method: zero-argument ``super()`` would refuse an
        instance of the standard class).  A subclass that keeps more extends
        it, calling ``super()``; a test compares a converted handler with a
        new one, for every class ``install()`` converts.  It builds values
        only: no fork registration, no change to ``handler``.

        The attributes ``handle()`` reads are instance attributes, even those
        equal to the class's defaults: a thread that entered safelog's
        ``handle()`` just before ``uninstall()`` gave the handler its
        standard class back reads them after."""
        return {
            "_reentrant": collections.deque(),
            "_emitting": False,
            "_owed_after_emit": False,
            "_locks_through_methods": cls._locks_through_methods,
            # Its process: in another one, a fork ran no at-fork hook.
            "_owner_pid": os.getpid(),
        }

    def _register_for_fork(self) -> None:
        """What every safelog handler's ``__init__`` ends with, after the
        standard ``__init__``: the state of :meth:`_safelog_state`, then a
        place in the fork steps."""
        for name, value in self._safelog_state(self).items():
            setattr(self, name, value)
        _atfork.register(self)

    def _notice_hookless_fork(self) -> None:
        """Called, before the handler lock is taken, when this process is not
        the one the handler belongs to: a fork that ran no Python at-fork
        hook (uWSGI without ``--py-call-uwsgi-fork-hooks``, C code calling
        ``fork()``).  Nothing was prepared, so the child step runs now, as
        after a fork that outlasted the fork timeout: a fresh lock, the
        parent's deferred records and buffered bytes left to the parent."""
        if not self._owner_pid:
            return  # a subclass that never registered: it takes no fork steps
        self._lock_held_for_fork = self._lock_held_by_forker = False
        self.after_fork_in_child()

    def acquire(self) -> None:
        """Take the handler lock, as the standard ``acquire()`` does; first,
        in a process forked without at-fork hooks, make it this process's."""
        if self._owner_pid != _getpid():
            self._notice_hookless_fork()
        super().acquire()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Before 3.13 the standard handle() calls acquire() and release(),
        # so a subclass may override them; handle() then calls them too.
        cls._locks_through_methods = not _HANDLE_USES_WITH_LOCK and (
            cls.acquire is not ForkSafeHandler.acquire
            or cls.release is not logging.Handler.release
        )

    def handle(self, record: logging.LogRecord) -> Any:
        """As ``logging.Handler.handle``: filter, then ``emit()`` under the
        handler lock, taken as the standard ``handle()`` of this Python
        takes it (``acquire()``/``release()`` before 3.13, ``with
        self.lock`` from 3.13); returns what the standard ``handle()``
        returns.

        A record logged through this handler by the thread that is inside
        its ``emit()`` already (a signal handler, a formatter or a filter
        that logs) is written right after the record in progress, whole,
        instead of in the middle of its write (where a buffered stream
        raises "reentrant call" and a rotating file may roll over under
        it).  It is written even when the signal handler that logged it
        then raises (``KeyboardInterrupt``), before the exception goes on;
        should that write itself be interrupted, ``flush()`` and
        ``close()`` write what is left."""
        passed = self.filter(record)
        if isinstance(passed, logging.LogRecord):  # 3.12+: a replacement
            record = passed
        if not passed:
            return passed
        if self._emitting and _held_by_this_thread(self.lock):
            self._defer((record,))
            return passed
        if self._owner_pid != _getpid():
            self._notice_hookless_fork()
        lock = self.lock
        if lock is None or self._locks_through_methods:
            return self._handle_locked_as_stdlib(record, passed)
        # _emit_and_catch_up(self.emit, record), written out: this is every
        # record's path, and the call costs a few percent of it.
        lock.acquire()
        try:
            self._emitting = True
            try:
                self.emit(record)
            finally:
                self._emitting = False
                if self._owed_after_emit:
                    self._catch_up()
        finally:
            lock.release()
        return passed

    def _handle_locked_as_stdlib(self, record: logging.LogRecord, passed: Any) -> Any:
        """The rest of ``handle()`` where the standard one treats the lock
        specially: it calls a subclass's ``acquire()`` and ``release()``
        (before 3.13), and skips a lock ``createLock()`` set to None (before
        3.13; from 3.13 ``with None`` raises ``TypeError``)."""
        with self._held():
            self._write_marked(self.emit, record)
        return passed

    def _emit_and_catch_up(self, write: Callable[[Any], None], records: Any) -> None:
        """``write(records)`` as ``handle()`` calls ``emit()`` for each of
        ``records``: deferred when this thread is inside ``emit()``, else
        under the handler lock, marked as emitting, then what is owed."""
        if self._emitting and _held_by_this_thread(self.lock):
            self._defer(records)
            return
        with self._held():
            self._write_marked(write, records)

    def _write_marked(self, write: Callable[[Any], None], records: Any) -> None:
        """``write(records)``, the handler lock held, marked as emitting;
        then what was logged re-entrantly meanwhile."""
        self._emitting = True
        try:
            write(records)
        finally:
            self._emitting = False
            if self._owed_after_emit:
                self._catch_up()

    @contextlib.contextmanager
    def _held(self) -> Iterator[None]:
        """The handler lock, held as the standard ``handle()`` holds it."""
        if _HANDLE_USES_WITH_LOCK:
            if self._owner_pid != _getpid():
                self._notice_hookless_fork()
            with self.lock:  # type: ignore[union-attr]
                yield
        else:
            self.acquire()
            try:
                yield
            finally:
                self.release()

    def _defer(self, records: Iterable[logging.LogRecord]) -> None:
        # Only the thread inside emit() calls this: it holds the lock.
        self._reentrant.extend(records)
        self._owed_after_emit = True

    def _catch_up(self) -> None:
        """With the lock held and no record in progress: reset the stream
        a child inherited inside emit(), then write the records logged
        re-entrantly, each marked as emitting, those they log in turn too,
        up to _REENTRANT_MAX.  An exception from emit() (a signal handler's
        KeyboardInterrupt) leaves the records after it owed."""
        stream, self._stream_to_reset = self._stream_to_reset, None
        if stream is not None:
            _reset_inherited_stream(stream)
        # Marked as emitting from before the check: a signal handler that
        # logs between the check and popleft() defers its record, instead of
        # writing it and catching up on the rest itself.
        reentrant = self._reentrant
        for _ in range(_REENTRANT_MAX):
            self._emitting = True
            try:
                if not reentrant:
                    break
                self.emit(reentrant.popleft())
            finally:
                self._emitting = False
        else:
            self._give_up_on_reentrant()
        self._owed_after_emit = False

    def _give_up_on_reentrant(self) -> None:
        """Report the records still logged re-entrantly after _REENTRANT_MAX:
        records that log records that log..."""
        reentrant = self._reentrant
        while reentrant:
            try:
                record = reentrant.popleft()
            except IndexError:  # a signal handler's handle() took the last
                return
            try:
                raise RecursionError(
                    f"more than {_REENTRANT_MAX} records logged re-entrantly "
                    f"while {self!r} was writing one"
                )
            except RecursionError:
                self.handleError(record)

    def _catch_up_unless_emitting(self) -> None:
        """What ``flush()`` and ``close()`` do first: what is owed after
        ``emit()``, unless this thread is inside it (then it follows the
        record in progress, as in ``handle()``)."""
        with self._held():
            if self._owed_after_emit and not self._emitting:
                self._catch_up()

    def flush(self) -> None:
        """As the standard ``flush()``, after writing the records logged
        re-entrantly that are still owed (see ``handle()``)."""
        if self._owed_after_emit:
            self._catch_up_unless_emitting()
        super().flush()

    def close(self) -> None:
        """As the standard ``close()``, after writing the records logged
        re-entrantly that are still owed (see ``handle()``)."""
        if self._owed_after_emit:
            self._catch_up_unless_emitting()
        super().close()

    def _at_fork_reinit(self) -> None:
        # logging's own child hook calls this, before safelog's child step,
        # for every handler.  It would re-initialise the lock in place, which
        # breaks the forking thread when it holds the lock (a signal handler
        # that forked inside emit(): its release() then fails).  The child
        # step decides instead (see after_fork_in_child); a handler that is
        # not registered for it keeps the standard behaviour.
        if not self._registered_for_fork():
            super()._at_fork_reinit()  # type: ignore[misc]

    def _registered_for_fork(self) -> bool:
        return hasattr(self, "_reentrant")

    def before_fork(self, deadline: float) -> None:
        lock = self.lock
        if lock is not None:
            self._lock_held_by_forker = _held_by_this_thread(lock)
            # Bounded: a thread stuck in a slow write must not block the fork.
            timeout = max(0.0, deadline - time.monotonic())
            self._lock_held_for_fork = lock.acquire(timeout=timeout)

    def after_fork_in_parent(self) -> None:
        self._lock_held_by_forker = False
        if self._lock_held_for_fork:
            self._lock_held_for_fork = False
            assert self.lock is not None
            self.lock.release()

    def after_fork_in_child(self) -> None:
        """Start afresh: a lock no vanished thread holds, none of the
        parent's deferred records, and the subclass's own reset.

        The handler was quiet at fork when its lock was taken in time by a
        thread not in the middle of a record.  When the forking thread itself
        was inside this handler (a signal handler that forks), it keeps its
        lock (no other thread can hold it, and its frames release it as they
        return) and, when inside ``emit()``, counts as not quiet: the record
        it was writing is the parent's."""
        held_by_forker = self._lock_held_by_forker
        forked_inside_emit = held_by_forker and self._emitting
        self._quiet_at_fork = self._lock_held_for_fork and not forked_inside_emit
        lock = self.lock
        if held_by_forker:
            if self._lock_held_for_fork:
                assert lock is not None
                lock.release()  # before_fork's acquisition; emit()'s stays
        elif lock is not None:  # None: createLock() wants none, as stdlib
            # Never reuse a lock that a thread which does not exist here may
            # hold.
            self.lock = threading.RLock()
        self._lock_held_for_fork = self._lock_held_by_forker = False
        # The thread inside emit() resets this when emit() returns.
        self._emitting = forked_inside_emit
        # The parent writes what its threads logged re-entrantly.
        self._reentrant = collections.deque()
        self._stream_to_reset = None
        self._owed_after_emit = False
        self._owner_pid = os.getpid()
        self._start_afresh_in_child()

    def _start_afresh_in_child(self) -> None:
        """Drop whatever the child shares with the parent; called in the
        child's single thread, before any other code runs there."""


def text_encoding(encoding: str | None, mode: str) -> str | None:
    """``encoding`` as the standard file handlers resolve it (3.10+), for a
    safelog handler's ``__init__`` to call first: the ``EncodingWarning``
    (``-X warn_default_encoding``) then points at the line that created the
    handler, as the standard handler's does, not into safelog."""
    resolve = getattr(io, "text_encoding", None)
    if encoding is not None or resolve is None or "b" in mode:
        return encoding
    # Frames up from the warning: this function, the handler's __init__,
    # the line that called it.
    resolved: str = resolve(encoding, 3)
    return resolved


def _descriptor_of(stream: object) -> int | None:
    try:
        fd = stream.fileno()  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):  # UnsupportedOperation too
        return None
    return fd if isinstance(fd, int) else None


def stream_for_child(stream: object) -> DescriptorStream | None:
    """The stream a forked child should write through instead of ``stream``,
    or None to keep ``stream``.

    The child's records go straight to the descriptor, never through an
    inherited buffer: a vanished parent thread may hold its lock, and the
    bytes pending in it are the parent's to write.  Only a text file or
    socket stream is replaced, whose bytes reach its descriptor unchanged; a
    stream that transforms them (gzip, a custom class) is kept.
    """
    fd = _plain_descriptor(stream)
    if fd is None:
        return None
    assert isinstance(stream, io.TextIOWrapper)
    try:
        at_start = os.lseek(fd, 0, os.SEEK_CUR) == 0
    except OSError:  # a pipe, a socket, a terminal: no start to speak of
        at_start = False
    return DescriptorStream(
        fd,
        encoding=stream.encoding,
        errors=stream.errors or "strict",
        name=getattr(stream, "name", None),
        mode=getattr(stream, "mode", "w"),
        at_start=at_start,
        write_timeout=_socket_timeout(stream),
    )


def _socket_timeout(stream: io.TextIOWrapper) -> float | None:
    """The timeout of the socket under ``stream`` (``makefile()``), which
    the child's writes honour as the socket's own would; None otherwise.

    A socket with a timeout has a non-blocking descriptor: the socket object
    waits for it in Python, a raw ``os.write`` would fail at once."""
    layer = stream.buffer
    raw = getattr(layer, "raw", layer)
    sock = getattr(raw, "_sock", None)  # socket.SocketIO keeps its socket there
    timeout = sock.gettimeout() if isinstance(sock, socket.socket) else None
    return timeout if isinstance(timeout, float) else None


def _write_past_inherited_stream(handler: StreamHandler | FileHandler) -> None:
    """In a forked child: write ``handler``'s records through a
    :class:`DescriptorStream` from now on.

    The inherited stream object stays referenced (see ``_inherited_stream``)
    and usable by the child's other writers.  When the fork outlasted the
    fork timeout, a parent thread was inside this handler: blocked in its
    flush to a full pipe, say, holding the buffer's lock with the record in
    the buffer.  A child that flushed the stream then (exit does, for
    ``sys.stderr``) would wait on that lock or write the record again, so the
    buffer gets a fresh lock and drops the parent's bytes.  So it does when
    the child was forked by the thread inside ``emit()`` (a signal handler
    that forks), once that ``emit()`` returns in the child.  A
    :class:`DescriptorStream` (a child's, forked again) forgets the rest of
    a record a failed write left: the process that began the record writes
    it.
    """
    inherited = handler.stream
    if isinstance(inherited, DescriptorStream):
        inherited.forget_unwritten()  # the parent finishes its record
    child_stream = stream_for_child(inherited)
    if child_stream is None:
        return
    if handler._emitting:
        # This thread forked inside emit() (from a signal handler), perhaps
        # inside the stream's own code, which a reset would pull the buffer
        # from under: the reset waits until emit() returns.
        handler._stream_to_reset = inherited
        handler._owed_after_emit = True
    elif not handler._quiet_at_fork:
        _reset_inherited_stream(inherited)
    handler._inherited_stream = inherited
    handler.stream = cast(TextIO, child_stream)


def _reset_inherited_stream(stream: object) -> None:
    """In a forked child, with no thread inside ``stream``: drop the
    parent's bytes pending in it, as ``reset_text_stream`` does, and the
    text its text layer has not passed to the buffer yet (a record between
    ``write`` and ``flush``), which ``reset_text_stream`` leaves alone
    unless told the stream's ``newline`` setting."""
    buffer = getattr(stream, "buffer", None)
    if type(stream) is io.TextIOWrapper and type(buffer) is io.BufferedWriter:
        raw = buffer.raw  # an attribute: no buffer lock taken
        if not raw.closed:
            # The text layer's flush hands its pending text to the buffer,
            # which hands it to a raw file that keeps nothing.  Re-initialised
            # first, the buffer has a fresh lock and none of the parent's bytes.
            buffer.__init__(_Discard())  # type: ignore[misc]
            try:
                stream.flush()
            finally:
                buffer.__init__(raw)  # type: ignore[misc]
    reset_text_stream(stream, newline=None, known_newline=False)


class _Discard(io.RawIOBase):
    """A raw file that takes every write and keeps nothing."""

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        return len(data)


def _plain_descriptor(stream: object) -> int | None:
    """The descriptor under ``stream`` if it is a text stream over a file or
    socket, buffered or not (``sys.stderr``, ``open()``, ``makefile()``)."""
    if not isinstance(stream, io.TextIOWrapper):
        return None
    layer = stream.buffer
    if isinstance(layer, (io.BufferedWriter, io.BufferedRandom)):
        layer = layer.raw
    if not isinstance(layer, (io.FileIO, socket.SocketIO)):
        return None
    return _descriptor_of(layer)


class _BatchWritingHandler(ForkSafeHandler):
    """What :class:`StreamHandler` and :class:`FileHandler` share: handling
    at once the records ``safelog.QueueHandler``'s writer took off its queue
    together (see :meth:`_handle_batch`)."""

    if TYPE_CHECKING:  # from the standard stream handler each subclass is
        stream: Any
        terminator: str

    # The emit(), handle() and flush() that _handle_batch() stands in for:
    # those of the class made with writes_batches=True, as they were then.
    # Compared on every batch, not once per class, so that one of a
    # subclass, of a mixin, or patched in later (mock.patch.object,
    # instrumentation wrapping logging.FileHandler.emit) sees each record.
    _batch_methods: ClassVar[
        tuple[Callable[..., Any], Callable[..., Any], Callable[..., Any]] | None
    ] = None

    def __init_subclass__(cls, *, writes_batches: bool = False, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if writes_batches:
            cls._batch_methods = (cls.emit, cls.handle, cls.flush)

    def _takes_batch_now(self) -> bool:
        """Whether :meth:`_handle_batch` writes records together now: the
        class still has the standard ``emit()``, ``handle()`` and
        ``flush()``, and the stream is a :class:`DescriptorStream` (a
        FileHandler's once open, a StreamHandler's in a forked child)."""
        cls = type(self)
        methods = getattr(cls, "_batch_methods", None)  # None once uninstall()ed
        if methods is None or type(self.stream) is not DescriptorStream:
            return False
        emit, handle, flush = methods
        return cls.emit is emit and cls.handle is handle and cls.flush is flush

    def _handle_batch(
        self,
        records: Sequence[logging.LogRecord],
        reported: type[BaseException] = Exception,
    ) -> None:
        """Handle ``records`` as :meth:`handle` would one at a time, writing
        them together: for ``safelog.QueueHandler``'s writer, when
        :meth:`_takes_batch_now`.

        Each record goes through ``filter()`` as in ``handle()``.  Under one
        acquisition of the handler lock, those that passed are formatted in
        order and written by :meth:`DescriptorStream.write_records`, each
        whole, with the bytes ``emit()`` writes record by record.  A record
        that fails (to filter, format, encode or write) goes to
        ``handleError``; the others are still written.  ``reported`` is what
        counts as such a failure (the writer thread passes
        ``BaseException``); anything else propagates.  Called by the thread
        that is inside ``emit()`` (a signal handler that flushes the queue),
        it leaves the records to follow the one in progress, as ``handle()``
        does.  A stream closed or replaced since :meth:`_takes_batch_now`,
        or a handler ``uninstall()`` gave its standard class back meanwhile,
        gets each record through ``emit()``."""
        # Found on this class, not the handler's: uninstall() may give the
        # handler its standard class back, which has neither, before the lock.
        passed = _BatchWritingHandler._passing(self, records, reported)
        if not passed:
            return
        write = functools.partial(
            _BatchWritingHandler._write_batch, self, reported=reported
        )
        if self._owner_pid != _getpid():
            self._notice_hookless_fork()
        lock = self.lock
        if lock is None or self._locks_through_methods:
            self._emit_and_catch_up(write, passed)  # as handle() locks
            return
        with lock:
            # uninstall() changes the class only under this lock: checked
            # once it is held, the class stays for the whole batch.
            if not isinstance(self, _BatchWritingHandler):
                _emit_each(self, passed, reported)
            elif self._emitting:  # this thread, inside emit(), holds the lock
                self._defer(passed)
            else:
                self._write_marked(write, passed)

    def _passing(
        self, records: Sequence[logging.LogRecord], reported: type[BaseException]
    ) -> Sequence[logging.LogRecord]:
        """The records ``filter()`` passes, each as it hands it back; one
        whose filter raises goes to ``handleError``."""
        if not self.filters and type(self).filter is logging.Filterer.filter:
            return records
        passed = []
        for record in records:
            try:
                verdict = self.filter(record)
            except reported:  # as the writer reports one raised by handle()
                _report_error(self, record)
                continue
            if verdict:
                # 3.12+: a filter may hand back a replacement record.
                passed.append(
                    verdict if isinstance(verdict, logging.LogRecord) else record
                )
        return passed

    def _write_batch(
        self, records: Sequence[logging.LogRecord], reported: type[BaseException]
    ) -> None:
        """What ``emit()`` writes for each of ``records``, with the handler
        lock held.  ``emit()`` would also call ``flush()``, which has nothing
        to do on an open DescriptorStream (and on a closed one the write
        fails already)."""
        stream: object = self.stream
        if type(stream) is not DescriptorStream:
            _emit_each(self, records, reported)
            return
        format_record = self.format
        formatter = self.formatter
        if formatter is not None and type(self).format is logging.Handler.format:
            format_record = formatter.format  # what Handler.format calls
        terminator = self.terminator
        texts: list[str] = []
        formatted: list[logging.LogRecord] = []  # the records texts[i] came from
        for record in records:
            try:
                text = format_record(record) + terminator
            except reported:  # as emit(): this record only
                _report_error(self, record)
                continue
            texts.append(text)
            formatted.append(record)
        if texts:
            stream.write_records(
                texts,
                failed=lambda index: _report_error(self, formatted[index]),
                reported=reported,
            )


class StreamHandler(_BatchWritingHandler, _StreamHandlerBase, writes_batches=True):
    """``logging.StreamHandler`` that a forked child can use at once.

    Outside of fork it is the standard handler.  In a forked child, a stream
    that has a file descriptor and an encoding (``sys.stderr``, a pipe, a file)
    is replaced by a :class:`DescriptorStream` on the same descriptor, encoding
    and errors: the child's records go straight to the descriptor, never
    through the inherited buffer, whose lock a parent thread may have held at
    fork and whose pending bytes belong to the parent.  The child's records keep
    their order; relative to other text the child writes through the original
    stream object (``print``), they may come earlier, since that text waits in
    the stream's buffer.  A stream with no descriptor (``io.StringIO``) is kept
    as it is.  On POSIX a stream opened with an explicit ``newline=`` other
    than ``"\\n"`` gets ``"\\n"`` line ends in the child.  When the fork
    outlasted the fork timeout while a parent thread was inside this handler,
    the child also re-initialises the inherited stream's buffer (a fresh lock,
    an empty buffer), so flushing that stream there, as interpreter exit does
    for ``sys.stderr``, neither hangs nor writes again the record that thread
    was flushing (see docs/how-it-works.md for the text layer).  So does a
    child forked by a signal handler while its thread was inside this
    handler's ``emit()``, once that ``emit()`` returns there: the record it
    was writing is the parent's.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(stream)
        self._register_for_fork()

    def _start_afresh_in_child(self) -> None:
        _write_past_inherited_stream(self)


class FileHandler(_BatchWritingHandler, _FileHandlerBase, writes_batches=True):
    """``logging.FileHandler`` that writes each record in one ``os.write``.

    Same signature, attributes and output bytes as the standard handler.  The
    file is opened by ``open()`` exactly as the standard handler opens it (so
    a bad path, mode or encoding fails the same way, at the same moment), then
    only its descriptor is kept, set to append: ``stream`` is a
    :class:`DescriptorStream`.  Each record reaches the file whole in one
    write at its end, so a forked child never writes a parent's record again
    and processes appending to one file never tear each other's records.
    The one exception is a write that fails part way (a full disk): it is
    reported, the rest of the record follows before this process's next
    one, but another process's record may land right after its first part
    (see :class:`DescriptorStream`).
    """

    def __init__(
        self,
        filename: Any,
        mode: str = "a",
        encoding: str | None = None,
        delay: bool = False,
        errors: str | None = None,
    ) -> None:
        encoding = text_encoding(encoding, mode)
        super().__init__(filename, mode, encoding, delay, errors)
        self._register_for_fork()

    def flush(self) -> None:
        """As ``logging.StreamHandler.flush``.  A file's stream holds nothing
        to flush (each record reached the kernel whole), unless a full disk
        left a record half written or records logged re-entrantly are still
        owed (see ``handle()``): only then is the lock taken."""
        stream: object = self.stream
        if (
            type(stream) is DescriptorStream
            and not stream._unwritten
            and not stream.closed
            and not self._owed_after_emit
        ):
            return
        super().flush()

    def _start_afresh_in_child(self) -> None:
        _write_past_inherited_stream(self)

    def _open(self) -> io.TextIOWrapper:
        return self._open_as(self.mode)

    def _open_as(self, mode: str) -> io.TextIOWrapper:
        open_file = getattr(self, "_builtin_open", open)
        text_file = open_file(
            self.baseFilename, mode, encoding=self.encoding, errors=self.errors
        )
        if not isinstance(text_file, io.TextIOWrapper):
            return cast(io.TextIOWrapper, text_file)  # binary mode: as the stdlib
        stream = DescriptorStream.from_text_file(text_file, mode)
        set_append(stream.fileno())
        # Typed as the stdlib's stream; it is a text stream with the same API.
        return cast(io.TextIOWrapper, stream)


def _emit_each(
    handler: logging.Handler,
    records: Sequence[logging.LogRecord],
    reported: type[BaseException],
) -> None:
    """``emit()`` for each of ``records``, the handler lock held: a batch's
    way when its stream or class changed since it was taken.  A record whose
    ``emit()`` raises a ``reported`` goes to ``handleError``."""
    for record in records:
        try:
            handler.emit(record)
        except reported:
            _report_error(handler, record)


def _report_error(handler: logging.Handler, record: logging.LogRecord) -> None:
    # As safelog.QueueHandler's writer reports an exception from handle():
    # a broken handleError must not cost the records after this one.
    with contextlib.suppress(Exception):
        handler.handleError(record)


def set_append(fd: int) -> None:
    """Give ``fd`` O_APPEND: every write lands at the current end of the file,
    after what any other process sharing the file wrote ("a" mode has it
    already; "w" truncated the file first).  A no-op on Windows."""
    if fcntl is None:
        return  # Windows: one process per file, as with the stdlib
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    if not flags & os.O_APPEND:
        fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_APPEND)
