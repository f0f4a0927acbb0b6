"""``safelog.QueueHandler``: a handler whose caller side takes no lock, and the
one writer thread that owns the real handlers.

The caller filters the record, captures what may change later (the merged
message, the rendered exception) in a shallow copy of it, and puts that copy
on a ``queue.SimpleQueue``.  A single daemon thread, started on the first
record, hands each copy to the target handlers, which format and write it as
they would have done if called directly.

Fork, through the at-fork registry: before a fork the writer drains what was
queued before the fork began and exits, within the shared fork deadline, so
no safelog thread exists at the instant of fork; the child starts with an
empty queue and no thread; each process starts a writer again on its next
record.  Exit: the first exit hook (``threading._register_atexit``, which also
runs in multiprocessing children that leave through ``os._exit``, or
``atexit``) drains the queue and stops the writer; records logged after it are
handled on the logging thread.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import itertools
import logging
import os
import queue
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal, Union, cast

from . import _atfork
from ._handlers import takes_batches, write_batch

__all__ = ["DEFAULT_MAXSIZE", "QueueHandler", "flush"]

Overflow = Literal["block", "drop_new", "drop_old"]
_OVERFLOW_POLICIES = ("block", "drop_new", "drop_old")

DEFAULT_MAXSIZE = 10_000
"""Records a :class:`QueueHandler` holds before its overflow policy applies."""

WRITER_THREAD_NAME = "safelog-writer"

# A caller blocked on a full queue looks again after at most this long.
_BLOCK_POLL_MAX = 0.001
# After close or exit, a caller waits at most this long for the queue to be
# written out before it handles its record anyway (a target that logs while
# holding a lock the queue's records need must not wait for ever).
_RETIRE_WAIT = 5.0
# Barrier waits look at the writer this often, to restart it if it is gone.
_BARRIER_POLL = 0.05
# The writer takes at most this many records off the queue at a time: a
# batch is formatted under its target's lock, which a fork waits for.
_BATCH_MAX = 256

# Filterer.filter returns the record itself from 3.12 on, True before.
_FILTER_RETURNS_RECORD = sys.version_info >= (3, 12)

_DEFAULT_FORMATTER = logging.Formatter()

# What the caller enqueues for a record: its class and a copy of its __dict__.
_Captured = tuple[type, dict[str, Any]]
_Target = Union[logging.Handler, str]


class _Batch:
    """Records the writer took off the queue together, the targets they go
    to, and how many of them each target has been handed so far."""

    __slots__ = ("handed", "records", "targets")

    def __init__(
        self, records: list[logging.LogRecord], targets: tuple[logging.Handler, ...]
    ) -> None:
        self.records = records
        self.targets = targets
        self.handed = [0] * len(targets)


class _Stop:
    """Queue item: the writer that takes it exits."""

    __slots__ = ()


class _Barrier:
    """Queue item: set ``done`` once everything queued before it is handled
    and the targets are flushed."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


_STOP = _Stop()
_START_TOKEN = object()

# Every live QueueHandler, for safelog.flush() and the exit hooks.
_live_handlers: weakref.WeakSet[QueueHandler] = weakref.WeakSet()


class QueueHandler(logging.Handler):
    """Hand records to ``handlers`` on a writer thread; the caller takes no lock.

    ``handlers`` are the targets: ``logging.Handler`` objects, or names of
    handlers (as ``dictConfig`` gives them).  A name is looked up when the
    handler is made, and if it does not exist yet, on each record until it
    does; once found, the target is held (logging's own registry is weak).
    From ``dictConfig``, a name the configuration does not have, or targets
    that lead back to this handler, raise ``ValueError`` at configuration
    time; a cycle that names close later leaves that target out, reported
    once through ``handleError``.
    Each record reaches every target whose level it meets through the
    target's own ``handle()``, so its filters and formatter apply, and the
    bytes written are those the target writes when called directly.  This
    handler's own formatter is not used.

    Caller side (``handle``/``emit``): no lock of any kind, so logging from a
    signal handler, from ``__del__`` or from inside a target cannot deadlock.
    The merged message (``getMessage()``) and the rendered exception
    (``exc_text``, with the first target's formatter) are captured at call
    time.  When the queue holds ``maxsize`` records, ``overflow`` decides:
    ``"block"`` (the caller polls until there is room; nothing is lost),
    ``"drop_new"`` or ``"drop_old"`` (the record dropped is counted in
    :attr:`dropped` and reported once, as a warning record from logger
    ``"safelog"``, when the queue is half empty again).

    Writer side: one daemon thread named ``safelog-writer``, started on the
    first record.  An exception in a target goes to that target's
    ``handleError``; the writer keeps running.  The writer takes every
    record already queued (up to 256, and never past a flush barrier) at
    once.  A ``safelog.FileHandler`` target (or ``safelog.StreamHandler`` on
    a :class:`DescriptorStream`) that does not override ``handle``,
    ``emit`` or ``flush`` gets them as one batch: filtered one by one, then
    formatted and written under one acquisition of its lock, in one
    ``os.write`` on a regular file (writes of at most ``PIPE_BUF`` bytes on
    a pipe), with the same bytes, order and ``handleError`` calls as one
    ``handle()`` per record.  Other targets get one ``handle()`` per record.

    Fork: the writer is drained and stopped before ``fork()`` (within the
    shared fork timeout, see :func:`safelog.set_fork_timeout`), so at the
    instant of fork no safelog thread exists.  The child starts with an
    empty queue and writes only its own records; the parent writes all of
    its own, including those still queued at fork.  Each starts a writer
    again on its next record.

    Exit: records logged before the process ends are written at normal exit,
    on ``sys.exit()`` from any thread, and in ``multiprocessing`` children of
    every start method.  A process that leaves through ``os._exit()``
    itself must call :func:`safelog.flush` first.  Once the exit hooks have
    run, and after :meth:`close`, records are handled on the logging thread.
    """

    def __init__(
        self,
        handlers: Iterable[_Target],
        *,
        maxsize: int = DEFAULT_MAXSIZE,
        overflow: Overflow = "block",
    ) -> None:
        specs = tuple(handlers)
        if not specs:
            raise ValueError("handlers must hold at least one handler or name")
        for spec in specs:
            if not isinstance(spec, (logging.Handler, str)):
                raise TypeError(
                    f"handlers must be logging.Handler objects or handler names, "
                    f"got {spec!r}"
                )
            if spec is self:
                raise ValueError("a QueueHandler cannot be its own target")
        if isinstance(maxsize, bool) or not isinstance(maxsize, int):
            raise TypeError(f"maxsize must be an int, got {maxsize!r}")
        if maxsize < 1:
            raise ValueError(f"maxsize must be >= 1, got {maxsize!r}")
        if overflow not in _OVERFLOW_POLICIES:
            raise ValueError(
                f"overflow must be 'block', 'drop_new' or 'drop_old', got {overflow!r}"
            )
        self._target_specs = specs
        self._maxsize = maxsize
        self._overflow: Overflow = overflow
        self._targets: tuple[logging.Handler, ...] | None = None
        self._missing_reported: set[str] = set()
        # Names found so far, held strongly: logging's registry is weak, so a
        # target no logger refers to lives only as long as someone keeps it.
        self._bound_targets: dict[str, logging.Handler] = {}
        # Names left out for good, with the reason (a cycle).
        self._refused_targets: dict[str, str] = {}
        # dictConfig passes the names as a ConvertingList whose configurator
        # holds the handlers it configures.  Keeping that mapping until the
        # names are resolved keeps alive a target configured after this
        # handler that no logger refers to.
        self._named_handlers: Mapping[str, Any] | None = _configured_handlers(handlers)
        self._check_targets(handlers)
        # Only once the arguments are good: logging.Handler.__init__ lists
        # the handler for logging.shutdown(), which must not meet a half-made
        # one (the next dictConfig flushes every listed handler).
        super().__init__()
        for spec in specs:
            if isinstance(spec, str):
                self._bind_target(spec)
        self._names_to_resolve = not all(
            isinstance(spec, logging.Handler) or spec in self._bound_targets
            for spec in specs
        )
        if not self._names_to_resolve:
            # Every target exists already, so each is registered for fork
            # before this handler: nothing to re-register on the writer.
            self._resolved_targets()
        self._closed = False
        self._fresh_state()
        _atfork.register(self)
        _live_handlers.add(self)

    def _fresh_state(self) -> None:
        """The per-process state: set up at creation and in a forked child."""
        self._owner_pid = os.getpid()
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        # Whoever pops the one token may start a writer (deque.pop is atomic),
        # so two callers never start two writers, and no caller takes a lock.
        self._start_tokens: collections.deque[object] = collections.deque(
            [_START_TOKEN]
        )
        self._writer: threading.Thread | None = None
        self._writer_ident: int | None = None
        self._stop_pending = False  # a stop request seen out of its place
        # Flush barriers that a "drop_old" caller took off the front of the
        # queue: everything queued before each is with the writer already.
        self._displaced: collections.deque[_Barrier] = collections.deque()
        self._inline_drain = threading.Lock()  # only ever tried, never waited on
        self._inline_drainer: int | None = None
        # Set once close() or the exit hooks have written out the queue:
        # from then on each caller handles its record on its own thread.
        self._retired = threading.Event()
        if self._closed:  # a closed handler's forked child has nothing queued
            self._retired.set()
        self._retiring_thread: int | None = None  # running close() or exit
        self._writer_retired = False  # the start token is taken for good
        self._forking = False
        self._fork_prepared = False
        self._fork_holds_token = False
        self._exiting = False
        # next() on itertools.count is atomic: callers count drops without a
        # lock.  Reading it also counts, so reads are counted (under a lock
        # that only readers take) and subtracted.
        self._drop_events = itertools.count()
        self._drop_reads = 0
        self._drop_read_lock = threading.Lock()
        self._overflowed = False
        self._drops_reported = 0

    # -- public attributes -------------------------------------------------

    @property
    def maxsize(self) -> int:
        """Records the queue holds before the overflow policy applies."""
        return self._maxsize

    @property
    def overflow(self) -> Overflow:
        """The overflow policy: ``"block"``, ``"drop_new"`` or ``"drop_old"``."""
        return self._overflow

    @property
    def dropped(self) -> int:
        """Records dropped by the overflow policy in this process so far."""
        with self._drop_read_lock:
            total = next(self._drop_events) - self._drop_reads
            self._drop_reads += 1
        return total

    @property
    def targets(self) -> tuple[logging.Handler, ...]:
        """The target handlers (those named and not yet configured are left
        out until they exist, and one that would close a cycle for good)."""
        return self._resolved_targets()

    # -- caller side: no lock ----------------------------------------------

    def handle(self, record: logging.LogRecord) -> Any:
        """Filter ``record`` and queue a copy of it for the targets; take no
        lock.  Returns what ``logging.Handler.handle`` returns."""
        passed: Any
        if self.filters:
            passed = self.filter(record)
            if not passed:
                return passed
            if isinstance(passed, logging.LogRecord):
                record = passed
        else:
            passed = record if _FILTER_RETURNS_RECORD else True
        # emit() inlined: this is every log call's cost for the caller.
        try:
            state = record.__dict__.copy()
            # Merged now: the arguments may change after the call.
            state["msg"] = record.getMessage()
            state["args"] = None
            if record.exc_info and not record.exc_text:
                state["exc_text"] = self._render_exception(record)
        except RecursionError:  # as logging.Handler.emit: never swallowed
            raise
        except Exception:
            self.handleError(record)
            return passed
        if self._closed or self._exiting:
            self._handle_here((record.__class__, state))
            return passed
        pending = self._queue
        if pending.qsize() >= self._maxsize and not self._make_room():
            return passed
        pending.put((record.__class__, state))
        if self._writer is None:
            self._wake()
        return passed

    def emit(self, record: logging.LogRecord) -> None:
        """Queue a copy of ``record`` for the writer, unfiltered; take no
        lock."""
        try:
            captured = self._capture(record)
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)
            return
        if self._closed or self._exiting:
            self._handle_here(captured)
            return
        pending = self._queue
        if pending.qsize() >= self._maxsize and not self._make_room():
            return
        pending.put(captured)
        if self._writer is None:
            self._wake()

    def _handle_here(self, captured: _Captured) -> None:
        """After close or exit: handle the record on this thread, once what
        was queued before it is written out.  On the thread writing the
        queue out (a target logging), queue it instead: that thread takes
        it next, and waiting for itself would never end."""
        me = threading.get_ident()
        if me in (self._writer_ident, self._inline_drainer, self._retiring_thread):
            # Also a signal handler interrupting close() or the exit hook:
            # that thread writes the queue out once more when it is done.
            self._queue.put(captured)
            if self._writer is None:
                self._wake()
            return
        if not self._retired.is_set():
            self._retired.wait(_RETIRE_WAIT)
        self._process(captured)

    def _capture(self, record: logging.LogRecord) -> _Captured:
        state = record.__dict__.copy()
        state["msg"] = record.getMessage()
        state["args"] = None
        if record.exc_info and not record.exc_text:
            state["exc_text"] = self._render_exception(record)
        return (record.__class__, state)

    def _render_exception(self, record: logging.LogRecord) -> str:
        # Rendered now, as the first target's formatter would do it: the
        # exception and its traceback's frames may change later.
        assert record.exc_info is not None
        return self._exception_formatter().formatException(record.exc_info)

    def _exception_formatter(self) -> logging.Formatter:
        targets = self._resolved_targets()
        formatter = targets[0].formatter if targets else None
        return formatter if formatter is not None else _DEFAULT_FORMATTER

    def _make_room(self) -> bool:
        """The queue is full: apply the overflow policy.  Return False to
        drop the new record."""
        if self._overflow == "drop_new":
            next(self._drop_events)
            self._overflowed = True
            return False
        if self._overflow == "drop_old":
            try:
                oldest = self._queue.get_nowait()
            except queue.Empty:
                return True
            if type(oldest) is tuple:
                next(self._drop_events)
                self._overflowed = True
            elif isinstance(oldest, _Barrier):
                # Never dropped, and never put back behind newer records: the
                # writer answers it once done with what it holds.
                self._displaced.append(oldest)
            else:  # the stop: the writer exits once done with what it holds
                self._stop_pending = True
            return True
        # "block".  The writer never waits for itself, and after close or
        # exit the record is handled on this thread right after it is queued.
        if threading.get_ident() == self._writer_ident or self._closed or self._exiting:
            return True
        delay = 0.00005
        while self._queue.qsize() >= self._maxsize:
            if self._writer is None:
                self._wake()
            time.sleep(delay)
            delay = min(delay * 2, _BLOCK_POLL_MAX)
        return True

    def _wake(self) -> None:
        """This thread queued an item and no writer runs: start one.  After
        close or exit, handle what is queued here instead."""
        if self._closed or self._exiting:
            self._drain_inline()
            return
        if self._forking:
            return  # after_fork_in_parent starts it
        try:
            self._start_tokens.pop()
        except IndexError:
            return  # another thread is starting it, or a fork holds the token
        started = False
        no_thread = False
        try:
            if not (self._forking or self._closed or self._exiting):
                writer = threading.Thread(
                    target=self._writer_main,
                    args=(self._queue,),
                    name=WRITER_THREAD_NAME,
                    daemon=True,
                )
                self._writer = writer
                writer.start()
                started = True
        except RuntimeError:  # no new thread at interpreter shutdown (3.12+)
            self._writer = None
            self._exiting = True
            no_thread = True
        finally:
            if not started:
                self._start_tokens.append(_START_TOKEN)
        if no_thread:
            self._retire()  # as the exit hook would have
        elif not started and (self._closed or self._exiting):
            self._drain_inline()

    # -- writer side -------------------------------------------------------

    # The batch the writer is handing out, so that a target flushing this
    # handler from the writer thread finishes it before later records.
    _batch: _Batch | None = None

    def _writer_main(self, pending: queue.SimpleQueue[Any]) -> None:
        writer = threading.current_thread()
        self._writer_ident = threading.get_ident()
        try:
            if self._names_to_resolve:
                self._resolved_targets()
                if self._targets is not None:
                    # Named targets may be newer than this handler, so their
                    # fork steps would run before ours (newest first) and
                    # take their locks while our writer still needs them.
                    # Registering again puts our before step first; the fork
                    # steps are idempotent.
                    self._names_to_resolve = False
                    _atfork.register(self)
            get, get_nowait = pending.get, pending.get_nowait
            while True:
                item = get()
                if type(item) is tuple:
                    # Take the records queued behind it too, up to a barrier
                    # or a stop (handled after them, in their place) or
                    # _BATCH_MAX, and hand them out as one batch.
                    records = []
                    while True:
                        record_class, state = item
                        record = record_class.__new__(record_class)
                        record.__dict__ = state
                        records.append(record)
                        if len(records) >= _BATCH_MAX:
                            item = None
                            break
                        try:
                            item = get_nowait()
                        except queue.Empty:
                            item = None
                            break
                        if type(item) is not tuple:
                            break
                    self._deliver_batch(records)
                    if self._displaced:
                        self._answer_displaced()
                    if self._overflowed:
                        self._report_drops()
                    if item is not None and self._process(item):
                        break
                else:
                    if self._displaced:  # taken off the queue before item
                        self._answer_displaced()
                    if self._process(item):
                        break
                if self._stop_pending:
                    break
        finally:
            self._stop_pending = False
            self._writer_ident = None
            if self._writer is writer:
                self._writer = None
            self._start_tokens.append(_START_TOKEN)
            # Records queued after the stop request, with no one left to
            # start a writer for them: start it here (not during a fork).
            if not pending.empty() and pending is self._queue:
                self._wake()

    def _process(self, item: Any) -> bool:
        """Handle one queue item; return True for a stop request."""
        if type(item) is tuple:
            record_class, state = item
            record = record_class.__new__(record_class)
            record.__dict__ = state
            self._deliver(record)
            return False
        if isinstance(item, _Barrier):
            self._flush_targets()
            item.done.set()
            return False
        return True

    def _deliver(self, record: logging.LogRecord) -> None:
        for target in self._resolved_targets():
            if record.levelno >= target.level:
                try:
                    target.handle(record)
                except Exception:
                    _report_target_error(target, record)

    def _deliver_batch(self, records: list[logging.LogRecord]) -> None:
        """Hand ``records`` to every target whose level each one meets, in
        order: to a safelog file or stream handler as one batch (filtered,
        formatted and written together under one acquisition of its lock,
        see ``_handlers.write_batch``), to any other target one
        ``handle()`` at a time."""
        batch = _Batch(records, self._targets or self._resolved_targets())
        self._batch = batch
        try:
            self._finish_batch(batch)
        finally:
            self._batch = None

    def _finish_batch(self, batch: _Batch) -> None:
        """Hand each target the records of ``batch`` it has not had yet.

        Re-entered, through ``_drain_inline``, by a target that flushes this
        handler on the writer thread: the batch is finished there, before
        any record still queued, and the outer call finds nothing left."""
        records, handed = batch.records, batch.handed
        count = len(records)
        for index, target in enumerate(batch.targets):
            start = handed[index]
            if start >= count:
                continue
            if takes_batches(target):
                handed[index] = count  # before the target runs any code
                level = target.level
                eligible = [r for r in records[start:] if r.levelno >= level]
                try:
                    if not eligible or write_batch(target, eligible):
                        continue
                except Exception:  # write_batch reports errors itself: a bug
                    _report_target_error(target, eligible[0])
                    continue
                handed[index] = start  # it took none after all
            # handed[] is read again each time: a re-entered call may have
            # handed this target the rest of the batch already.
            while handed[index] < count:
                record = records[handed[index]]
                handed[index] += 1  # before the target runs any code
                if record.levelno >= target.level:
                    try:
                        target.handle(record)
                    except Exception:
                        _report_target_error(target, record)

    def _answer_displaced(self) -> None:
        """Flush the targets for, and release, the barriers a "drop_old"
        caller took off the queue."""
        barriers = []
        with contextlib.suppress(IndexError):
            while True:
                barriers.append(self._displaced.popleft())
        self._flush_targets()
        for barrier in barriers:
            barrier.done.set()

    def _flush_targets(self) -> None:
        for target in self._resolved_targets():
            try:
                target.flush()
            except Exception:
                _report_target_error(target, _flush_record())

    def _report_drops(self) -> None:
        """Report the records dropped since the last report, once the queue
        is at most half full."""
        if self._queue.qsize() > self._maxsize // 2:
            return
        self._overflowed = False
        total = self.dropped
        count, self._drops_reported = total - self._drops_reported, total
        if count:
            warning = logging.LogRecord(
                "safelog",
                logging.WARNING,
                __file__,
                0,
                f"safelog.QueueHandler dropped {count} record(s): queue full "
                f"(maxsize={self._maxsize}, overflow={self._overflow!r})",
                None,
                None,
            )
            self._deliver(warning)

    def _drain_inline(self) -> None:
        """Handle every queued item on this thread (after close or exit, and
        for a flush called by a target on the writer).

        One thread drains at a time, so records keep their order.  A thread
        that finds another draining leaves its items to it (never waits: it
        may be a signal handler interrupting that very drain); the drainer
        looks again after letting go, so none is left behind.  It ends:
        after close or exit callers no longer queue their records, so only
        the few that were on their way can follow."""
        pending = self._queue
        while self._inline_drain.acquire(blocking=False):
            self._inline_drainer = threading.get_ident()
            try:
                self._drain_queued()
            finally:
                self._inline_drainer = None
                self._inline_drain.release()
            if pending.empty():
                return

    def _drain_queued(self) -> None:
        """The body of ``_drain_inline``, with its lock held."""
        pending = self._queue
        on_writer = threading.get_ident() == self._writer_ident
        batch = self._batch
        if on_writer and batch is not None:
            # A target flushing mid-batch: the rest of the batch comes before
            # anything still queued.
            self._finish_batch(batch)
        while True:
            try:
                item = pending.get_nowait()
            except queue.Empty:
                break
            if self._displaced and type(item) is not tuple:
                self._answer_displaced()  # taken off the queue before item
            if self._process(item) and on_writer:
                self._stop_pending = True  # the writer exits in its loop
        if self._displaced:
            self._answer_displaced()
        if self._overflowed:
            self._report_drops()

    # -- targets -----------------------------------------------------------

    def _resolved_targets(self) -> tuple[logging.Handler, ...]:
        targets = self._targets
        if targets is not None:
            return targets
        found: list[logging.Handler] = []
        missing = False
        for spec in self._target_specs:
            if isinstance(spec, logging.Handler):
                found.append(spec)
                continue
            handler = self._bound_targets.get(spec)
            if handler is None:
                handler = self._bind_target(spec)
            if handler is not None:
                found.append(handler)
                continue
            refused = self._refused_targets.get(spec)
            missing = missing or refused is None
            if spec not in self._missing_reported:
                self._missing_reported.add(spec)
                _report_missing_target(self, spec, refused)
        if missing:
            return tuple(found)
        self._targets = targets = tuple(found)
        self._named_handlers = None
        return targets

    def _bind_target(self, name: str) -> logging.Handler | None:
        """The handler named ``name``, held from now on; None while no
        handler has that name, and for good if it would close a cycle."""
        if name in self._refused_targets:
            return None
        handler = _handler_named(name, self._named_handlers)
        if handler is None:
            return None
        if isinstance(handler, QueueHandler):
            cycle = _path_back_to(self, [(repr(name), handler, None)])
            if cycle is not None:
                self._refused_targets[name] = _cycle_message(self.name, cycle)
                return None
        self._bound_targets[name] = handler
        _shut_down_after(self, handler)
        return handler

    def _check_targets(self, names: object) -> None:
        """Raise ValueError if dictConfig builds this handler with a target
        name it does not configure, or if the targets lead back to this
        handler.

        ``names`` is the ``handlers`` argument: from dictConfig, a
        ConvertingList that knows the configurator and the entry being
        configured, which is how this handler learns its own name."""
        named_handlers = self._named_handlers
        if named_handlers is not None:
            for spec in self._target_specs:
                if isinstance(spec, str) and spec not in named_handlers:
                    known = ", ".join(map(repr, sorted(named_handlers, key=str)))
                    raise ValueError(
                        f"unknown target handler {spec!r}: this configuration's "
                        f"handlers are {known}"
                    )
        own_name, own_entry = _entry_being_configured(names, named_handlers)
        resolve = getattr(getattr(names, "configurator", None), "resolve", None)
        cycle = _path_back_to(
            self,
            _targets_of(self, named_handlers, resolve),
            own_entry=own_entry,
            resolve=resolve,
        )
        if cycle is not None:
            raise ValueError(_cycle_message(own_name, cycle))

    # -- flush and close ---------------------------------------------------

    def flush(self) -> None:
        """Return once every record queued before the call is handled and
        the targets are flushed.

        Safe from any thread, from a target (on the writer thread it handles
        the queued records itself) and after :meth:`close`.  Waits as long as
        the targets take; returns at once when nothing is pending."""
        self._adopt_if_forked()
        me = threading.get_ident()
        if me == self._writer_ident or me == self._inline_drainer:
            # Called by a target (or a signal handler) on the thread that is
            # handling records: waiting for a barrier would wait for itself.
            self._drain_inline()
            self._flush_targets()
            return
        if (
            self._queue.empty()  # first: whoever took the last record shows
            and self._writer is None  # below until it has handled it
            and self._inline_drainer is None
        ):
            self._flush_targets()
            return
        barrier = _Barrier()
        self._queue.put(barrier)
        while True:
            if self._writer is None:
                self._wake()
            if barrier.done.wait(_BARRIER_POLL):
                return

    def close(self) -> None:
        """Write everything queued, stop the writer, close the targets.

        Idempotent; safe from any thread, including the writer (a target
        closing it).  Records logged afterwards are handled on the logging
        thread."""
        self._adopt_if_forked()
        if not self._closed:
            self._closed = True
            self._retiring_thread = threading.get_ident()
            self._stop_writer()
            self._retire()
            for target in self._resolved_targets():
                try:
                    target.close()
                except Exception:
                    _report_target_error(target, _flush_record())
        _live_handlers.discard(self)
        super().close()

    def _stop_for_exit(self) -> None:
        """Exit hook: write everything, stop the writer, and from now on
        handle records on the logging thread."""
        self._adopt_if_forked()
        self._exiting = True
        self._retiring_thread = threading.get_ident()
        self._stop_writer()
        self._retire()

    def _retire(self) -> None:
        """Write out what is queued and flush the targets; then callers
        handle their records themselves.  ``_closed`` or ``_exiting`` is set
        already, so no caller queues any more but the few on their way, and
        this ends however many threads keep logging."""
        me = threading.get_ident()
        self._drain_inline()
        while self._inline_drainer is not None or not self._queue.empty():
            if self._inline_drainer == me:
                break  # a target closing this handler in the middle of a drain
            time.sleep(0.0005)  # another thread writes out the last few
            self._drain_inline()
        self._flush_targets()
        self._retired.set()
        self._retiring_thread = None
        self._drain_inline()  # what a signal handler or a target queued meanwhile

    def _stop_writer(self) -> None:
        """Let the writer handle what is queued, then exit, and keep any
        writer from starting again (callers set ``_closed`` or ``_exiting``
        first).  Waits for a writer that a caller is starting right now."""
        if self._writer_retired:
            return
        writer = self._writer
        if writer is not None and writer.ident == threading.get_ident():
            self._stop_pending = True  # called from a target on the writer
            return
        self._take_start_token(None)
        # No writer runs or can start: the token is kept for good.
        self._writer_retired = True

    def _take_start_token(
        self, deadline: float | None
    ) -> tuple[bool, threading.Thread | None]:
        """Stop the writer once it has handled what is queued (waiting for
        one that a caller is starting right now, or for a fork that holds
        the token), and take the start token, so that no writer runs or can
        start; give up at ``deadline`` (None: never).  Return whether the
        token was taken, and the writer stopped, if any."""
        stopped: threading.Thread | None = None
        while True:
            try:
                self._start_tokens.pop()
            except IndexError:
                pass
            else:
                return True, stopped
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False, stopped
            writer = self._writer
            if writer is not None and writer.ident is not None:
                if stopped is not writer:
                    self._queue.put(_STOP)
                    stopped = writer
                writer.join(remaining)  # it gives the token back as it ends
            else:
                time.sleep(0.00005)  # a caller is starting one right now

    def _adopt_if_forked(self) -> None:
        # A child made without the at-fork hooks (a fork() from C): never
        # join or drain the parent's writer, start afresh.
        if self._owner_pid != os.getpid():
            self.after_fork_in_child()

    # -- fork (the at-fork registry's protocol) ----------------------------

    def before_fork(self, deadline: float) -> None:
        """Let the writer finish what was queued before the fork began and
        exit, and keep any writer from starting until after the fork; give up
        at ``deadline``."""
        if self._fork_prepared:
            return  # registered twice: the newest registration did it
        self._fork_prepared = True
        self._forking = True
        taken, stopped = self._take_start_token(deadline)
        if taken:
            self._fork_holds_token = True
            if stopped is not None:
                _wait_os_thread_gone(stopped, deadline)

    def after_fork_in_parent(self) -> None:
        """Give back the start token; start a writer for records queued
        during the fork."""
        if not self._fork_prepared:
            return
        self._fork_prepared = False
        self._forking = False
        if self._fork_holds_token:
            self._fork_holds_token = False
            self._start_tokens.append(_START_TOKEN)
        if not self._queue.empty() and self._writer is None:
            self._wake()

    def after_fork_in_child(self) -> None:
        """Start afresh: an empty queue, no writer, no drops counted.  The
        parent writes what it had queued."""
        self._fresh_state()

    def __repr__(self) -> str:
        level = logging.getLevelName(self.level)
        names = [
            spec if isinstance(spec, str) else type(spec).__name__
            for spec in self._target_specs
        ]
        return f"<safelog.QueueHandler ({level}) -> {names!r}>"


def flush() -> None:
    """Write everything logged so far through every ``safelog.QueueHandler``
    in this process, and flush their targets.

    Returns at once when nothing is pending.  Call it before ``os._exit()``
    in a process that leaves that way on its own (a raw ``os.fork()`` child):
    no exit hook runs there."""
    for handler in list(_live_handlers):
        handler.flush()


def _stop_all_for_exit() -> None:
    for handler in list(_live_handlers):
        # One broken handler must not keep the others' records unwritten.
        with contextlib.suppress(Exception):
            handler._stop_for_exit()


def _configured_handlers(handlers: object) -> Mapping[str, Any] | None:
    configurator = getattr(handlers, "configurator", None)
    config = getattr(configurator, "config", None)
    if not isinstance(config, dict):
        return None
    # dict.get: no conversion, just the mapping dictConfig fills in.
    named = dict.get(config, "handlers")
    return named if isinstance(named, dict) else None


def _handler_named(
    name: str, named_handlers: Mapping[str, Any] | None
) -> logging.Handler | None:
    entry = _entry_named(name, named_handlers)
    return entry if isinstance(entry, logging.Handler) else None


def _entry_named(name: str, named_handlers: Mapping[str, Any] | None) -> object:
    """What ``name`` stands for: a handler, a dictConfig entry not built yet
    (a dict), or None."""
    if named_handlers is not None and name in named_handlers:
        # dict.get: no conversion, just what dictConfig has filled in.  A
        # name this configuration has is never looked up in the registry,
        # which may still hold a handler of that name from before.
        return dict.get(cast("dict[str, Any]", named_handlers), name)
    registry: Mapping[str, logging.Handler] = getattr(logging, "_handlers", {})
    return registry.get(name)


def _entry_being_configured(
    names: object, named_handlers: Mapping[str, Any] | None
) -> tuple[str | None, object]:
    """From dictConfig: the name and the entry of the handler whose
    ``handlers`` argument is ``names``, else ``(None, None)``.

    dictConfig converts the handler's entry, then its ``handlers`` list, and
    records each one's ``parent`` and ``key`` as it does so."""
    entry = getattr(names, "parent", None)
    name = getattr(entry, "key", None)
    if (
        named_handlers is None
        or not isinstance(name, str)
        or dict.get(cast("dict[str, Any]", named_handlers), name) is not entry
    ):
        return None, None
    return name, entry


# A step along the targets: its label, the handler or dictConfig entry it
# reaches, and the handlers mapping the entry's own names are looked up in.
_Step = tuple[str, object, Union[Mapping[str, Any], None]]


def _targets_of(
    node: object,
    named_handlers: Mapping[str, Any] | None,
    resolve: Callable[[str], Any] | None,
) -> list[_Step]:
    """The targets of ``node`` that exist: those of a QueueHandler, or the
    names of a dictConfig entry not built yet whose class is one (looked up
    with ``resolve``, the configurator's).  Other handlers have none."""
    if isinstance(node, QueueHandler):
        named_handlers = node._named_handlers
        steps: list[_Step] = []
        for spec in node._target_specs:
            if isinstance(spec, logging.Handler):
                label = repr(spec.name) if spec.name else repr(spec)
                steps.append((label, spec, None))
                continue
            target = node._bound_targets.get(spec)
            entry = _entry_named(spec, named_handlers) if target is None else target
            if entry is not None:
                steps.append((repr(spec), entry, named_handlers))
        return steps
    if not isinstance(node, dict) or resolve is None:
        return []
    factory = dict.get(node, "class") or dict.get(node, "()")
    if isinstance(factory, str):
        try:
            factory = resolve(factory)
        except Exception:  # dictConfig reports it when it builds that entry
            return []
    names = dict.get(node, "handlers")
    if not (
        isinstance(factory, type)
        and issubclass(factory, QueueHandler)
        and isinstance(names, (list, tuple))
    ):
        return []
    steps = []
    for name in names:
        if isinstance(name, str):
            entry = _entry_named(name, named_handlers)
            if entry is not None:
                steps.append((repr(name), entry, named_handlers))
    return steps


def _path_back_to(
    origin: QueueHandler,
    first_steps: Iterable[_Step],
    *,
    own_entry: object = None,
    resolve: Callable[[str], Any] | None = None,
) -> list[str] | None:
    """The labels along a path of targets, starting with one of
    ``first_steps``, that ends at ``origin`` (or at ``own_entry``, its
    dictConfig entry), or None when there is no such path."""
    seen: set[int] = set()

    def walk(
        label: str, node: object, named: Mapping[str, Any] | None
    ) -> list[str] | None:
        if node is origin or (own_entry is not None and node is own_entry):
            return [label]
        if id(node) in seen:
            return None
        seen.add(id(node))
        for step in _targets_of(node, named, resolve):
            path = walk(*step)
            if path is not None:
                return [label, *path]
        return None

    for step in first_steps:
        path = walk(*step)
        if path is not None:
            return path
    return None


def _shut_down_after(handler: logging.Handler, target: logging.Handler) -> None:
    """Put ``handler`` after ``target`` in the list ``logging.shutdown()``
    flushes and closes newest first, so that ``target`` is still open when
    ``handler`` writes what it holds into it.

    ``dictConfig`` builds handlers in name order and closes the old ones
    through ``logging.shutdown()`` when it configures again: a target named
    after its queue handler is newer, and would be closed first."""
    refs: list[Any] | None = getattr(logging, "_handlerList", None)
    if refs is None:
        return
    # Not under logging's module lock: this runs on the writer too, which a
    # dictConfig holding that lock may be waiting for (it flushes this
    # handler).  remove() and append() are each atomic; a dictConfig that
    # empties the list meanwhile has shut everything down already.
    mine = None
    for ref in list(refs):
        referent = ref()
        if referent is handler:
            mine = ref
        elif referent is target:
            if mine is None:
                return  # already after it
            try:
                refs.remove(mine)
            except ValueError:
                return
            refs.append(mine)
            break
    else:
        return
    # A queue handler that sends to this one must stay after it in turn
    # (a -> b -> file: b moving after file moves a after b).
    for sender in list(_live_handlers):
        if sender is not handler and any(
            spec is handler
            for spec in (*sender._target_specs, *sender._bound_targets.values())
        ):
            _shut_down_after(sender, handler)


def _cycle_message(name: str | None, path: list[str]) -> str:
    start = repr(name) if name else "this safelog.QueueHandler"
    return f"target handlers form a cycle: {' -> '.join([start, *path])}"


def _report_target_error(target: logging.Handler, record: logging.LogRecord) -> None:
    with contextlib.suppress(Exception):  # a broken handleError must not
        target.handleError(record)  # stop the writer


def _report_missing_target(
    handler: QueueHandler, name: str, refused: str | None = None
) -> None:
    if refused is not None:
        message = f"{refused}; records are not sent to {name!r}"
    else:
        message = (
            f"no handler named {name!r} exists; records go to the other "
            f"targets until it does (fileConfig: list it before the queue "
            f"handler in [handlers] keys)"
        )
    try:
        raise ValueError(f"safelog.QueueHandler: {message}")
    except ValueError:
        handler.handleError(_flush_record())


def _flush_record() -> logging.LogRecord:
    return logging.makeLogRecord({"name": "safelog", "msg": "(no record)"})


def _wait_os_thread_gone(writer: threading.Thread, deadline: float) -> None:
    # join() returns when the thread's Python state is gone; the OS thread
    # ends a moment later.  Python 3.12 counts OS threads (/proc/self/stat)
    # to decide whether to warn that fork() is unsafe, so wait for it.
    native_id = getattr(writer, "native_id", None)
    if native_id is None or not sys.platform.startswith("linux"):
        return
    task = f"/proc/self/task/{native_id}"
    while os.path.exists(task) and time.monotonic() < deadline:
        time.sleep(0.00002)


def _register_exit_hooks() -> None:
    # threading's exit hooks run before non-daemon threads are joined, at
    # normal exit and also in multiprocessing children that leave through
    # os._exit (fork, forkserver), where atexit does not run.  atexit is the
    # fallback; our atexit hook runs before logging.shutdown (registered
    # earlier, run later), so nothing is pending when the targets close.
    register_threading_exit = getattr(threading, "_register_atexit", None)
    if register_threading_exit is not None:
        # RuntimeError: imported while the interpreter shuts down.
        with contextlib.suppress(RuntimeError):
            register_threading_exit(_stop_all_for_exit)
    atexit.register(_stop_all_for_exit)


_register_exit_hooks()
