"""``safelog.QueueHandler``: a handler whose caller takes no lock, and the one
consumer that hands its records to the target handlers.

The one rule: at any moment at most one thread *consumes* the queue (takes
records off it and hands them to the targets): the thread that holds the
queue's ``consumer`` lock.  That is

* the writer thread, for as long as it runs (started on the first record);
* the thread running ``os.fork()``, for the length of the fork;
* a thread in ``close()``, or running the exit hook;
* in *inline* mode, a logging thread, for its own record and any queued
  before it; also a ``flush()`` when no writer runs.

The lock is re-entrant, so that holding it *is* being the consumer: a thread
asks ``consumer._is_owned()`` and there is no moment when it holds the lock
without knowing it.  Everyone else only puts (a ``"drop_old"`` caller may also
discard the oldest record of a full queue; it never hands one to a target).
Nothing waits for itself: a record logged on the consuming thread (a target
that logs, a signal handler) is put and taken by that thread before it lets
go, and a wait for the writer gives up, or does the work, where the writer
could be the waiting thread's own to start.  A thread taking the lock over
from the writer is counted in ``takers``; while any is, the writer stops
after the record in its hands, and records taken off the queue and not yet
handed to every target (the batch in hand) stay for the next consumer.

Inline mode: after ``close()``, once the exit hook ran, when no thread can be
started, and in a forked child, each caller puts its record and consumes it
itself, so a log call returns once its record is written.  That is why a
child that leaves through ``os._exit()`` loses nothing.

All of a handler's per-process state is one :class:`_ProcessQueue`; a forked
child gets a new, empty one, so nothing of the parent's is written twice.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import queue
import sys
import threading
import time
import weakref
from collections.abc import Iterable
from typing import Any, Literal, Union

from . import _atfork, _pending
from ._delivery import (
    Batch,
    Renderings,
    flush_targets,
    note_record,
    render_exception,
    report_target_error,
)
from ._targets import Target, Targets

__all__ = ["DEFAULT_MAXSIZE", "QueueHandler"]

Overflow = Literal["block", "drop_new", "drop_old"]
_OVERFLOW_POLICIES = ("block", "drop_new", "drop_old")

DEFAULT_MAXSIZE = 10_000
"""Records a :class:`QueueHandler` holds before its overflow policy applies."""

WRITER_THREAD_NAME = "safelog-writer"

# A caller blocked on a full queue looks again after at most this long.
_BLOCK_POLL_MAX = 0.001
# In inline mode a caller waits at most this long for another thread's turn
# as consumer, then leaves its record to that thread: a target that logs
# while holding a lock the consumer needs must not wait for ever.
_INLINE_WAIT = 5.0
# Waits for the consumer lock or a flush look this often whether the process
# is still the one they began in (a signal handler may fork meanwhile) and
# whether a writer must be started.
_POLL = 0.05
# How long flush() or close() waits for the writer while holding a lock a
# target may need (see QueueHandler._wait_limit).
_LOCK_HELD_WAIT = 1.0
# The consumer takes at most this many records off the queue at a time.
_BATCH_MAX = 256
# While the writer is behind by fewer records than this, callers are logging
# a burst, not a flood: it takes small batches and, between them, lets the
# callers have the GIL (see _write).
_SHORT_BACKLOG = 1024
_SMALL_BATCH = 8
_YIELD = 0.0001

# Filterer.filter returns the record itself from 3.12 on, True before.
_FILTER_RETURNS_RECORD = sys.version_info >= (3, 12)
# Arguments of these exact types give the same message whenever it is
# merged, so a record with only such arguments is merged by the targets.
_IMMUTABLE_ARGUMENTS = frozenset({str, int, float, bool, type(None)})

# A record as queued: its class, a copy of its __dict__, and its exception
# rendered for each target (None when it has none to render).
_Captured = tuple[type, dict[str, Any], Union[Renderings, None]]

# Queue item that only wakes the writer, to see that it is to stop.
_WAKE = object()


class _Barrier:
    """Queue item put by flush(): answered once every record queued before
    it is handled and the targets are flushed.

    A lock taken at birth and released by the answer: releasing never waits
    (setting a ``threading.Event`` takes a lock its waiter holds for a
    moment, which a signal handler that flushes again can keep from the
    consumer for ever), and a timed wait on it still ends in a child forked
    by a signal handler in the middle of it."""

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending = threading.Lock()
        self._pending.acquire()

    def answer(self) -> None:
        self._pending.release()

    @property
    def answered(self) -> bool:
        return not self._pending.locked()

    def wait(self, timeout: float) -> None:
        if self._pending.acquire(timeout=timeout):
            self._pending.release()


class _ProcessQueue:
    """A QueueHandler's state in one process: a forked child makes a new one."""

    def __init__(self, *, inline: bool) -> None:
        self.pid = os.getpid()
        self.items: queue.SimpleQueue[Any] = queue.SimpleQueue()
        # Held by the one thread that consumes (see the module docstring).
        self.consumer = threading.RLock()
        # Held for as long as a writer thread exists: taken by the thread that
        # starts it, given back by the writer as the last thing it does, and
        # by a fork for its length, so that no writer starts meanwhile.
        self.writer_token = threading.Lock()
        self.writer: threading.Thread | None = None
        self.last_writer: threading.Thread | None = None  # for a fork to join
        # One entry per thread taking the consumer over from the writer.
        self.takers: collections.deque[None] = collections.deque()
        self.inline = inline  # each caller consumes its own record
        # Set in a forked child on the parent's state it replaced: whoever
        # was consuming or waiting on it there stops.
        self.forked_away = False
        self.fork_took = (False, False)  # the writer token, the consumer lock
        self.in_hand: Batch | None = None
        # Flush barriers off the queue, every record before them with the
        # consumer: answered once the batch in hand is handed out.  Taken
        # there by the consumer, or by a "drop_old" caller that found one at
        # the front of a full queue.
        self.barriers: collections.deque[_Barrier] = collections.deque()
        # One entry per flush() waiting: the writer does not yield meanwhile.
        self.flushes: collections.deque[None] = collections.deque()
        # Records the consuming thread itself put meanwhile (a signal handler,
        # a target that logs): it takes them before it is done.
        self.owed: collections.deque[None] = collections.deque()
        # One entry per dropped record (deque.append is atomic for callers),
        # moved into drops_counted by the consumer when no reader holds
        # count_lock; the consumer never waits for it.
        self.drops: collections.deque[None] = collections.deque()
        self.drops_counted = 0
        self.drops_reported = 0
        self.count_lock = threading.RLock()

    def pending(self) -> bool:
        """Whether a consumer has work: records, or a flush to answer."""
        return self.in_hand is not None or not self.items.empty() or bool(self.barriers)

    def consumes_here(self) -> bool:
        """Whether this thread is the consumer."""
        return bool(self.consumer._is_owned())  # type: ignore[attr-defined]

    def writer_running(self) -> bool:
        writer = self.writer
        return writer is not None and writer.is_alive()


# Every live QueueHandler, for safelog.flush() and the exit hooks.
_live_queues: weakref.WeakSet[QueueHandler] = weakref.WeakSet()


class QueueHandler(logging.Handler):
    """Hand records to ``handlers`` on a writer thread; the caller takes no lock.

    ``handlers`` are the targets: a ``logging.Handler``, or a list of
    handlers or handler names (as ``dictConfig`` gives them).  A name is looked up when
    the handler is made and, while no handler has it, on each record; the
    handler found is held.  From ``dictConfig``, a name the configuration
    does not have, or targets that lead back to this handler, raise
    ``ValueError`` at configuration time.  Each record reaches every target
    whose level it meets through the target's own ``handle()``, so its
    filters and formatter apply, and it writes the bytes it writes when
    called directly.  This handler's own formatter is not used.

    Caller side (``handle``/``emit``): no lock of any kind, so logging from
    a signal handler, from ``__del__`` or from inside a target cannot
    deadlock.  The message is merged at call time (unless every argument is
    an immutable ``str``, ``int``, ``float``, ``bool`` or ``None``, which
    merge the same later), and an exception is rendered at call time with
    each target's own formatter.  When the queue holds ``maxsize`` records,
    ``overflow`` decides: ``"block"`` (the caller polls until there is room;
    nothing is lost), ``"drop_new"`` or ``"drop_old"`` (the record dropped
    is counted in :attr:`dropped` and reported as a warning record from
    logger ``"safelog"`` once the queue is half empty again, or at the next
    :meth:`flush`).

    Writer side: one daemon thread named ``safelog-writer``, started on the
    first record.  Whatever a target raises, ``SystemExit`` and
    ``KeyboardInterrupt`` included, goes to that target's ``handleError``
    for that record; the other targets and the writer carry on.  A
    ``safelog.FileHandler`` target gets the records queued together in one
    ``os.write`` (see ``FileHandler._handle_batch``).

    Fork: before ``fork()`` the writer stops after the record in its hands
    (within the shared fork timeout, see :func:`safelog.set_fork_timeout`),
    so at the instant of fork no safelog thread exists; the parent writes
    everything it queued and starts a writer again.  A forked child starts
    with an empty queue and delivers each of its records on the thread that
    logs it, before the call returns: it starts no thread, and loses nothing
    when it leaves through ``os._exit()``.

    Exit: records are written at normal exit, on ``sys.exit()`` from any
    thread, and in ``multiprocessing`` children of every start method.
    After the exit hooks, and after :meth:`close`, each record is delivered
    on the thread that logs it.  A parent process that leaves through
    ``os._exit()`` must call :func:`safelog.flush` first.
    """

    def __init__(
        self,
        handlers: Target | Iterable[Target],
        *,
        maxsize: int = DEFAULT_MAXSIZE,
        overflow: Overflow = "block",
    ) -> None:
        specs = _target_specs(handlers)
        if any(spec is self for spec in specs):
            raise ValueError("a QueueHandler cannot be its own target")
        if isinstance(maxsize, bool) or not isinstance(maxsize, int):
            raise TypeError(f"maxsize must be an int, got {maxsize!r}")
        if maxsize < 1:
            raise ValueError(f"maxsize must be >= 1, got {maxsize!r}")
        if overflow not in _OVERFLOW_POLICIES:
            raise ValueError(
                f"overflow must be 'block', 'drop_new' or 'drop_old', got {overflow!r}"
            )
        self._maxsize = maxsize
        self._overflow: Overflow = overflow
        self._targets = Targets(specs, handlers, QueueHandler)
        self._targets.check(self, handlers)
        # Only once the arguments are good: logging.Handler.__init__ lists
        # the handler for logging.shutdown(), which must not meet a half-made
        # one (the next dictConfig flushes every listed handler).
        super().__init__()
        self._closed = False
        self._targets_closed = False
        self._state = _ProcessQueue(inline=False)
        self._targets.bind_existing(self)
        # Ahead: the writer must stop before a fork takes the locks of the
        # handlers it writes to, whichever were made first.
        _atfork.register(self, ahead=True)
        _live_queues.add(self)

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
        state = self._state
        with state.count_lock:
            return state.drops_counted + len(state.drops)

    @property
    def targets(self) -> tuple[logging.Handler, ...]:
        """The target handlers found so far (a name no handler has yet is
        left out, and one that would lead back to this handler)."""
        return self._targets.known()

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
        self.emit(record)
        return passed

    def emit(self, record: logging.LogRecord) -> None:
        """Queue a copy of ``record`` for the targets, unfiltered; take no
        lock (in inline mode, deliver it before returning)."""
        self._emit_carrying(record, None, None)

    def _emit_carrying(
        self, record: logging.LogRecord, key: str | None, value: object
    ) -> None:
        """:meth:`emit`, with ``key: value`` (unless ``key`` is None) added
        to the queued copy of ``record.__dict__`` and nowhere else: the
        caller's record, and whatever reads it during the call, never shows
        the key.  How ``install(queue=True)`` hands its dispatcher, this
        handler's one target, the logger a record was logged on."""
        try:
            copied = record.__dict__.copy()
            if key is not None:
                copied[key] = value
            args = record.args
            merge_now = type(record.msg) is not str
            if args and not merge_now:
                if type(args) is tuple:
                    for arg in args:  # a loop: cheaper here than a set test
                        if type(arg) not in _IMMUTABLE_ARGUMENTS:
                            merge_now = True
                            break
                else:  # one mapping argument
                    merge_now = True
            if merge_now:  # an argument may change after the call
                copied["msg"] = record.getMessage()
                copied["args"] = None
            renderings = None
            if record.exc_info and not record.exc_text:
                renderings = render_exception(record, self._targets.known())
        except RecursionError:  # as logging.Handler.emit: never swallowed
            raise
        except Exception:
            self.handleError(record)
            return
        captured = (record.__class__, copied, renderings)
        state = self._state
        if state.pid != os.getpid():  # a fork that ran no at-fork hook
            state = self._current_state()
        if state.inline:
            try:
                self._deliver_here(state, captured)
            except Exception:  # a log call never raises from the handler
                self.handleError(record)
            return
        items = state.items
        if items.qsize() >= self._maxsize and not self._make_room(state):
            return
        items.put(captured)
        # Read after the put: a writer exiting now sees the record (it checks
        # the queue after it has cleared state.writer).
        if state.writer is None:
            self._start_writer(state)

    def _deliver_here(self, state: _ProcessQueue, captured: _Captured) -> None:
        """Inline mode: put ``captured`` and consume, unless this thread
        consumes already (it takes the record before it is done)."""
        state.items.put(captured)
        if state.consumes_here():
            state.owed.append(None)
            return
        self._consume_here(state, _INLINE_WAIT)

    def _make_room(self, state: _ProcessQueue) -> bool:
        """The queue is full: apply the overflow policy.  Return False to
        drop the new record."""
        if self._overflow == "drop_new":
            state.drops.append(None)
            return False
        if self._overflow == "drop_old":
            with contextlib.suppress(queue.Empty):
                oldest = state.items.get_nowait()
                if type(oldest) is tuple:
                    state.drops.append(None)
                elif oldest is not _WAKE:
                    # A flush barrier: every record before it is with the
                    # consumer already, which answers it next.  Never dropped,
                    # never put back behind newer records.
                    state.barriers.append(oldest)
            return True
        # "block": wait for the writer to make room, but never where it
        # cannot: this thread consumes, a fork or close is taking over, or
        # no writer runs yet (this very thread may be starting it).  The
        # record then goes in over the limit.
        delay = 0.00005
        while state.items.qsize() >= self._maxsize:
            if state.takers or state.inline or state.consumes_here():
                return True
            if not state.writer_running():
                self._start_writer(state)
                if not state.writer_running():
                    return True
            time.sleep(delay)
            delay = min(delay * 2, _BLOCK_POLL_MAX)
        return True

    # -- the consumer ------------------------------------------------------

    def _start_writer(self, state: _ProcessQueue) -> None:
        """Start a writer thread unless one exists or is being started, a
        fork or another thread is taking over, or the handler is inline (then
        consume here).  Where no thread can start (interpreter shutdown), go
        inline."""
        if state.takers or state.forked_away:
            return
        if not state.writer_token.acquire(blocking=False):
            return  # a writer exists or is being started, or a fork holds it
        started = False
        try:
            if not (state.inline or state.takers or state.forked_away):
                writer = threading.Thread(
                    target=self._write,
                    args=(state,),
                    name=WRITER_THREAD_NAME,
                    daemon=True,
                )
                state.writer = writer
                try:
                    writer.start()  # it gives the token back as it ends
                    started = True
                except RuntimeError:  # no new thread at shutdown (3.12+)
                    state.writer = None
                    state.inline = True
        finally:
            if not started:
                state.writer_token.release()
        if state.inline and not started:
            self._consume_here(state, _INLINE_WAIT)

    def _consume_here(self, state: _ProcessQueue, wait: float | None) -> None:
        """Consume until the queue is empty, unless another thread consumes
        and keeps the lock longer than ``wait`` seconds (None: no limit):
        that thread then takes what is queued.  Records this thread's own
        signal handlers or targets put meanwhile are taken before it
        returns."""
        while self._take_consumer(state, wait):
            try:
                state.owed.clear()
                self._drain(state, None, report=True)
            finally:
                state.consumer.release()
            if not state.owed:
                return
            wait = 0.0

    def _take_owed(self, state: _ProcessQueue) -> None:
        """As the consumer, about to let go: take the records this thread's
        signal handlers or targets put meanwhile (each counted in ``owed``),
        and no others, which other threads may keep coming for ever."""
        while state.owed:
            state.owed.clear()
            self._drain(state, state.items.qsize(), report=True)

    def _wait_limit(self) -> float | None:
        """How long this thread may wait for the writer: without limit,
        unless it holds a lock a target may need (logging's module lock,
        which ``dictConfig`` holds while it flushes and closes handlers, or
        a target's own lock, held by a thread a signal handler interrupted).
        The writer may then be waiting for this very thread: the wait is
        bounded, and the writer finishes once the lock is let go."""
        if _owned_here(getattr(logging, "_lock", None)):
            return _LOCK_HELD_WAIT
        for target in self._targets.handlers(self):
            if _owned_here(target.lock):
                return _LOCK_HELD_WAIT
        return None

    def _take_consumer(self, state: _ProcessQueue, timeout: float | None) -> bool:
        """Hold ``state.consumer``, asking a running writer to stop after the
        record in its hands; give up after ``timeout`` seconds (None: never),
        or when this process turns out to be a forked child of the queue's
        (a signal handler forked while this thread waited).  Return whether
        this thread now consumes."""
        if state.consumer.acquire(blocking=False):
            return True
        state.takers.append(None)
        _wake_writer(state)
        try:
            deadline = None if timeout is None else time.monotonic() + timeout
            while not state.forked_away:
                wait = _POLL
                if deadline is not None:
                    wait = max(0.0, min(wait, deadline - time.monotonic()))
                if state.consumer.acquire(timeout=wait):
                    return True
                if deadline is not None and time.monotonic() >= deadline:
                    break
            return False
        finally:
            state.takers.pop()

    def _write(self, state: _ProcessQueue) -> None:
        """The writer thread: the consumer until it is asked to stop, the
        handler goes inline, or this process turns out to be a forked child
        of the one that started it (a target forked on this thread)."""
        state.consumer.acquire()
        items = state.items
        half_full = self._maxsize // 2
        short = min(_SHORT_BACKLOG, half_full)
        try:
            while not (state.takers or state.inline or state.forked_away):
                batch = state.in_hand
                if batch is None:
                    first = items.get()
                    most = _SMALL_BATCH if items.qsize() < short else _BATCH_MAX
                    batch, _ = self._take_batch(state, first, most)
                if batch is None or self._hand_out(state, batch, BaseException):
                    if state.barriers:
                        self._answer_barriers(state, BaseException)
                    elif state.drops and items.qsize() <= half_full:
                        self._report_drops(state, BaseException)
                    backlog = items.qsize()
                    if 0 < backlog < short and not state.flushes:
                        # A thread waiting for the GIL waits out the whole
                        # switch interval (5 ms) unless this one blocks: a
                        # caller in the middle of a burst would see that.
                        time.sleep(_YIELD)
        except BaseException:  # a bug of ours: say so, never end silently
            state.inline = True  # callers deliver their own records from now
            with contextlib.suppress(BaseException):
                self.handleError(note_record("the writer thread failed"))
        finally:
            if not state.forked_away:  # else this thread is a forked child's
                self._writer_ends(state)

    def _writer_ends(self, state: _ProcessQueue) -> None:
        state.consumer.release()
        state.writer = None
        state.last_writer = threading.current_thread()
        state.writer_token.release()
        # Records put as it stopped: taken now, by whoever should.
        if state.pending():
            if state.inline:
                self._consume_here(state, _INLINE_WAIT)
            elif not state.takers:
                self._start_writer(state)

    def _take_batch(
        self, state: _ProcessQueue, first: Any, most: int
    ) -> tuple[Batch | None, int]:
        """Make ``first`` and the records queued behind it (``most`` items in
        all, up to a flush barrier, which goes to ``state.barriers``) the
        batch in hand.  Return it (None when there is no record among them)
        and how many items were taken."""
        records: list[logging.LogRecord] = []
        renderings: list[Renderings | None] = []
        item = first
        taken = 1
        while True:
            if type(item) is tuple:
                record_class, copied, rendered = item
                record = record_class.__new__(record_class)
                record.__dict__ = copied
                records.append(record)
                renderings.append(rendered)
            elif item is not _WAKE:
                state.barriers.append(item)
                break
            if taken >= most:
                break
            try:
                item = state.items.get_nowait()
            except queue.Empty:
                break
            taken += 1
        if not records:
            return None, taken
        state.in_hand = Batch(records, renderings, self._targets.handlers(self))
        return state.in_hand, taken

    def _drain(self, state: _ProcessQueue, limit: int | None, *, report: bool) -> None:
        """As the consumer: finish the batch in hand, then take and hand out up
        to ``limit`` queued items (None: until the queue is empty); report
        drops if ``report``.  On the writer thread (a target flushing) what
        a target raises is reported, as the writer does; on any other thread
        a ``BaseException`` that is not an ``Exception`` propagates."""
        reported = _reported_here(state)
        left = limit
        while True:
            batch = state.in_hand
            if batch is None:
                if left is not None and left <= 0:
                    break
                try:
                    first = state.items.get_nowait()
                except queue.Empty:
                    break
                most = _BATCH_MAX if left is None else min(left, _BATCH_MAX)
                batch, taken = self._take_batch(state, first, most)
                if left is not None:
                    left -= taken
            if batch is not None and not self._hand_out(
                state, batch, reported, stoppable=False
            ):
                return  # a target forked: the rest is the parent's
            if state.barriers:
                self._answer_barriers(state, reported)
        if report and state.drops:
            self._report_drops(state, reported)

    def _answer_barriers(
        self, state: _ProcessQueue, reported: type[BaseException]
    ) -> None:
        """As the consumer, with no batch in hand: everything before the
        barriers taken off the queue is handed out, so report drops, flush
        the targets, and release the flush() calls waiting on them."""
        answered = []
        with contextlib.suppress(IndexError):
            while True:
                answered.append(state.barriers.popleft())
        try:
            if state.drops:
                self._report_drops(state, reported)
            flush_targets(self._targets.handlers(self), reported)
        finally:
            for barrier in answered:
                barrier.answer()

    def _hand_out(
        self,
        state: _ProcessQueue,
        batch: Batch,
        reported: type[BaseException],
        *,
        stoppable: bool = True,
    ) -> bool:
        """Hand out ``batch`` (see ``Batch.hand_out``); once all of it is
        handed, it is no longer in hand."""
        if not batch.hand_out(state, reported, stoppable=stoppable):
            return False
        if state.in_hand is batch:
            state.in_hand = None
        return True

    def _report_drops(
        self, state: _ProcessQueue, reported: type[BaseException]
    ) -> None:
        """Send the targets one warning record for the drops not reported."""
        if state.count_lock.acquire(blocking=False):  # never wait for a reader
            try:
                moved = len(state.drops)
                for _ in range(moved):
                    state.drops.popleft()
                state.drops_counted += moved
            finally:
                state.count_lock.release()
        total = state.drops_counted + len(state.drops)
        count, state.drops_reported = total - state.drops_reported, total
        if count:
            warning = note_record(
                f"safelog.QueueHandler dropped {count} record(s): queue full "
                f"(maxsize={self._maxsize}, overflow={self._overflow!r})",
                logging.WARNING,
            )
            batch = Batch([warning], [None], self._targets.handlers(self))
            self._hand_out(state, batch, reported, stoppable=False)

    def _current_state(self) -> _ProcessQueue:
        # A child made without the at-fork hooks (a fork() from C): never
        # wait for the parent's writer or write its records: start afresh.
        if self._state.pid != os.getpid():
            self.after_fork_in_child()
        return self._state

    # -- flush and close ---------------------------------------------------

    def flush(self) -> None:
        """Return once every record logged before the call is written (or
        dropped by the overflow policy, and that reported), and the targets
        are flushed.

        Safe from any thread, and from a target or a signal handler on the
        consuming thread (it writes the records itself there), also after
        :meth:`close`.  The records are written by the writer thread; when
        none runs, or in inline mode, by the calling thread.  It waits as
        long as the targets take."""
        state = self._current_state()
        if state.consumes_here():
            self._drain(state, state.items.qsize(), report=True)
            flush_targets(self._targets.handlers(self), _reported_here(state))
            return
        limit = self._wait_limit()
        deadline = None if limit is None else time.monotonic() + limit
        barrier = _Barrier()
        state.flushes.append(None)
        state.items.put(barrier)
        try:
            while not barrier.answered and not state.forked_away:
                if deadline is not None and time.monotonic() >= deadline:
                    return  # the writer answers it once this thread lets go
                if not state.writer_running():
                    # No writer to answer it (or one this very thread was
                    # starting when a signal handler flushed): answer it here.
                    if state.consumer.acquire(blocking=False):
                        try:
                            # Up to the barrier, no further: other threads
                            # may keep the queue full for ever.
                            self._drain(state, state.items.qsize(), report=True)
                            self._take_owed(state)
                        finally:
                            state.consumer.release()
                        continue
                    if not state.inline:
                        self._start_writer(state)
                barrier.wait(_POLL)
        finally:
            state.flushes.pop()

    def close(self) -> None:
        """Write everything queued, close the targets; from now on each record
        is delivered on the thread that logs it.

        Idempotent (a second call finishes a first one that was interrupted);
        safe from any thread, including a target on the consuming thread."""
        state = self._current_state()
        self._closed = True
        state.inline = True
        # Past a bounded wait the writer, seeing inline mode, writes the rest.
        self._consume_here(state, self._wait_limit())
        if not self._targets_closed and not state.forked_away:
            self._targets_closed = True
            for target in self._targets.handlers(self):
                try:
                    target.close()
                except Exception:
                    report_target_error(target, note_record("(close)"))
        _live_queues.discard(self)
        super().close()

    def _retire_for_exit(self) -> None:
        """Exit hook: stop the writer and write what is queued; from now on
        each record is delivered on the thread that logs it."""
        state = self._current_state()
        state.inline = True
        self._consume_here(state, _INLINE_WAIT)

    # -- fork (the at-fork registry's protocol) ----------------------------

    def before_fork(self, deadline: float) -> None:
        """Before ``deadline``: let the writer stop after the record in its
        hands and its thread end, and take the writer token (no writer
        starts until after the fork) and the consumer lock.  Nothing to do
        on a thread that consumes already (a target forking)."""
        state = self._state
        if state.consumes_here():
            return
        state.takers.append(None)
        _wake_writer(state)
        try:
            token = state.writer_token.acquire(timeout=_left(deadline))
            consumer = token and state.consumer.acquire(timeout=_left(deadline))
            state.fork_took = (token, consumer)
        finally:
            state.takers.pop()
        ended = state.last_writer
        if token and ended is not None:
            ended.join(_left(deadline))
            _wait_os_thread_gone(ended, deadline)

    def after_fork_in_parent(self) -> None:
        """Give back what the fork took; a writer starts if records wait."""
        state = self._state
        token, consumer = state.fork_took
        state.fork_took = (False, False)
        if consumer:
            state.consumer.release()
        if token:
            state.writer_token.release()
        if state.pending():
            if state.inline:
                # Held for the fork, the consumer took nothing; a record put
                # meanwhile (by a thread that found it held) is taken here.
                self._consume_here(state, _INLINE_WAIT)
            else:
                self._start_writer(state)

    def after_fork_in_child(self) -> None:
        """Start afresh, inline: an empty queue, no writer, no drops counted.
        The parent writes what it had queued."""
        self._state.forked_away = True
        self._state = _ProcessQueue(inline=True)

    def __repr__(self) -> str:
        level = logging.getLevelName(self.level)
        names = [
            spec if isinstance(spec, str) else type(spec).__name__
            for spec in self._targets.specs
        ]
        return f"<safelog.QueueHandler ({level}) -> {names!r}>"


def _flush_all() -> None:
    for handler in list(_live_queues):
        handler.flush()


def _target_specs(handlers: Target | Iterable[Target]) -> tuple[Target, ...]:
    """``handlers`` as a tuple of targets: one handler is one target; a
    single name is refused, since a string is also an iterable of names."""
    if isinstance(handlers, logging.Handler):
        return (handlers,)
    if isinstance(handlers, str):
        # Not taken as one name: from dictConfig a bare string arrives with
        # nothing of the configuration it names a handler of.
        raise TypeError(
            f"handlers must be a list of handlers or handler names, got the "
            f"string {handlers!r} (for one target, write [{handlers!r}])"
        )
    try:
        specs = tuple(handlers)
    except TypeError:
        raise TypeError(
            f"handlers must be a logging.Handler, or a list of handlers or "
            f"handler names, got {handlers!r}"
        ) from None
    if not specs:
        raise ValueError("handlers must hold at least one handler or name")
    for spec in specs:
        if not isinstance(spec, (logging.Handler, str)):
            raise TypeError(
                f"handlers must be logging.Handler objects or handler names, "
                f"got {spec!r}"
            )
    return specs


def _reported_here(state: _ProcessQueue) -> type[BaseException]:
    """What counts as one target's failure on this thread: anything on the
    writer, a thread of ours; elsewhere an ``Exception`` (a caller's own
    ``KeyboardInterrupt`` or ``SystemExit`` propagates, as from a direct
    handler)."""
    current = threading.current_thread()
    # The writer stays ours while it ends: _writer_ends consumes what was put
    # as it stopped, after state.writer is cleared.
    ours = current is state.writer or current is state.last_writer
    return BaseException if ours else Exception


def _owned_here(lock: object) -> bool:
    """Whether ``lock``, an ``RLock`` (anything else: never), is held by
    this thread."""
    is_owned = getattr(lock, "_is_owned", None)
    return bool(is_owned()) if is_owned is not None else False


def _wake_writer(state: _ProcessQueue) -> None:
    """Put a wake-up item for a writer that may be waiting for a record.
    Called after joining ``state.takers``: a writer started later sees the
    taker and stops by itself, so with none running nothing is put (an item
    no writer takes would start one after a fork, in an idle process)."""
    if state.writer is not None:
        state.items.put(_WAKE)


def _left(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())


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


def _retire_all_for_exit() -> None:
    for handler in list(_live_queues):
        # One broken handler must not keep the others' records unwritten.
        with contextlib.suppress(Exception):
            handler._retire_for_exit()


_pending.register(_pending.QUEUES, _flush_all, _retire_all_for_exit)
