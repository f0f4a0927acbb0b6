"""``safelog.QueueHandler``: a handler whose caller takes no lock, and the one
consumer that hands its records to the target handlers.

The one rule: at any moment at most one thread *consumes* the queue (takes
records off it and hands them to the targets), the thread that holds the
queue's ``consumer`` lock:

* the writer thread, for as long as it runs (started on the first record);
* the thread running ``os.fork()``, for the length of the fork;
* a thread in ``flush()`` or ``close()``, or running the exit hook;
* in *inline* mode, the logging thread, for its own record.

Everyone else only puts (a ``"drop_old"`` caller may also discard the oldest
record of a full queue; it never delivers one).  A thread that holds the
consumer lock never waits for it: a record it logs meanwhile (from a target,
or a signal handler) is put, and taken by that same thread before it lets go.
Whoever takes the lock from a running writer asks the writer to stop after
the record in its hands; records taken off the queue and not yet handed to
every target (the batch in hand) stay for the next consumer.

Inline mode: after ``close()``, once the exit hook ran, when no thread can be
started, and in a forked child, each caller puts its record and consumes it
itself, so a log call returns once its record is written.  That is why a
child that leaves through ``os._exit()`` loses nothing.

All of a handler's per-process state is one :class:`_ProcessQueue`; a forked
child gets a new, empty one, so nothing of the parent's is written twice.
"""

from __future__ import annotations

import atexit
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

from . import _atfork
from ._delivery import (
    Batch,
    Renderings,
    flush_targets,
    note_record,
    render_exception,
    report_target_error,
)
from ._targets import Target, Targets

__all__ = ["DEFAULT_MAXSIZE", "QueueHandler", "flush"]

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
# A thread taking over from the writer asks it again this often.
_TAKEOVER_POLL = 0.05
# A flush() looks this often whether a writer must be started to answer it.
_BARRIER_POLL = 0.05
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

# Queue item that only wakes the writer, to see that it is asked to stop.
_WAKE = object()


class _Barrier:
    """Queue item put by flush(): ``done`` is set once every record queued
    before it is handled and the targets are flushed."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


class _ProcessQueue:
    """A QueueHandler's state in one process: a forked child makes a new one."""

    def __init__(self, *, inline: bool) -> None:
        self.pid = os.getpid()
        self.items: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.consumer = threading.Lock()  # held by the one thread that consumes
        self.writer: threading.Thread | None = None
        self.stop_requested = False  # the writer stops after its record in hand
        self.paused = False  # a fork is under way: no writer may start
        self.fork_holds_consumer = False
        # Set in a forked child on the parent's state it replaced: whoever
        # was consuming it when a target forked stops there.
        self.forked_away = False
        self.inline = inline  # each caller consumes its own record
        self.in_hand: Batch | None = None
        # Flush barriers off the queue, every record before them with the
        # consumer: answered once the batch in hand is handed out.  Taken
        # there by the consumer, or by a "drop_old" caller that found one at
        # the front of a full queue.
        self.barriers: collections.deque[_Barrier] = collections.deque()
        # One entry per flush() waiting: the writer does not yield meanwhile.
        self.flushes: collections.deque[None] = collections.deque()
        # One entry per dropped record: deque.append is atomic for callers;
        # the consumer counts them into drops_counted, under count_lock.
        self.drops: collections.deque[None] = collections.deque()
        self.drops_counted = 0
        self.drops_reported = 0
        self.count_lock = threading.Lock()  # taken by readers and the counter only

    def pending(self) -> bool:
        """Whether a consumer has work: records, or a flush to answer."""
        return self.in_hand is not None or not self.items.empty() or bool(self.barriers)


# The queues whose consumer lock this thread holds (or is taking): such a
# thread never waits for that consumer, which is itself.
_holding = threading.local()


def _held_here() -> list[_ProcessQueue]:
    try:
        held: list[_ProcessQueue] = _holding.queues
    except AttributeError:
        held = _holding.queues = []
    return held


def _unhold(state: _ProcessQueue) -> None:
    held = _held_here()
    if state in held:  # a forked child dropped its parent's state already
        held.remove(state)


# Every live QueueHandler, for safelog.flush() and the exit hooks.
_live_handlers: weakref.WeakSet[QueueHandler] = weakref.WeakSet()


class QueueHandler(logging.Handler):
    """Hand records to ``handlers`` on a writer thread; the caller takes no lock.

    ``handlers`` are the targets: a ``logging.Handler``, the name of one (as
    ``dictConfig`` gives them), or a list of these.  A name is looked up when
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
    ``os.write`` (see ``_handlers.write_batch``).

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
        # Targets bound now are older than this handler, so their fork steps
        # run after ours (newest first), as they must: see _target_handlers.
        self._registered_after_targets = self._targets.complete
        _atfork.register(self)
        _live_handlers.add(self)

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
        """The target handlers (a name no handler has yet is left out, and
        one that would lead back to this handler)."""
        return self._targets.handlers(self)

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
        try:
            copied = record.__dict__.copy()
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
        if state.inline:
            state.items.put(captured)
            self._consume_here(state)
            return
        items = state.items
        if items.qsize() >= self._maxsize and not self._make_room(state):
            return
        items.put(captured)
        if state.writer is None:
            self._start_writer(state)

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
        # "block": never wait for a consumer that cannot run meanwhile.
        delay = 0.00005
        while state.items.qsize() >= self._maxsize:
            if state.inline or state in _held_here():
                return True  # this thread consumes: it takes the record later
            if state.writer is None:
                self._start_writer(state)
            time.sleep(delay)
            delay = min(delay * 2, _BLOCK_POLL_MAX)
        return True

    def _start_writer(self, state: _ProcessQueue) -> None:
        """Start a writer thread for ``state``, unless a consumer exists, a
        fork or another thread is taking over, or the handler is inline.
        Where no thread can start (interpreter shutdown), go inline."""
        if state.paused or state.inline or state.stop_requested:
            return
        if not state.consumer.acquire(blocking=False):
            return  # a writer runs, or is being started, or a fork holds it
        held = _held_here()
        held.append(state)  # a signal handler here must not wait for it
        started = False
        try:
            if state.paused or state.inline or state.stop_requested:
                return
            writer = threading.Thread(
                target=self._write,
                args=(state,),
                name=WRITER_THREAD_NAME,
                daemon=True,
            )
            state.writer = writer
            try:
                writer.start()  # the writer holds the consumer lock from now
                started = True
            except RuntimeError:  # no new thread at interpreter shutdown (3.12+)
                state.writer = None
                state.inline = True
        finally:
            _unhold(state)
            if not started:
                state.consumer.release()
        if state.inline:
            self._consume_here(state)

    def _consume_here(self, state: _ProcessQueue) -> None:
        """Inline mode: consume until the queue is empty.  Returns at once on
        a thread that consumes already (it takes what was put before it lets
        go), and after ``_INLINE_WAIT`` on a thread waiting for another
        consumer (which takes it)."""
        if state in _held_here():
            return
        # A second round, only if the consumer lock is free at once, for a
        # record a signal handler put here while this thread let go.  More
        # would make this caller write for other threads for ever.
        for wait in (_INLINE_WAIT, 0.0):
            if not (state.pending() and self._take_consumer(state, wait)):
                return
            try:
                self._drain(state, None, report=True)
            finally:
                self._let_go(state)

    # -- the consumer ------------------------------------------------------

    def _take_consumer(self, state: _ProcessQueue, timeout: float | None) -> bool:
        """Hold ``state.consumer``, asking a running writer to stop after the
        record in its hands; give up after ``timeout`` seconds (None: never,
        0: at once).  Return whether this thread now consumes."""
        held = _held_here()
        held.append(state)  # from now a record this thread logs is only put
        deadline = None if timeout is None else time.monotonic() + timeout
        asked: threading.Thread | None = None
        taken = False
        try:
            while True:
                writer = state.writer
                if writer is not None:
                    # Asked again each round: a thread that gave up taking
                    # over meanwhile cleared the request.
                    state.stop_requested = True
                    if writer is not asked:
                        state.items.put(_WAKE)  # it may be waiting for a record
                        asked = writer
                wait = _TAKEOVER_POLL
                if deadline is not None:
                    wait = max(0.0, min(wait, deadline - time.monotonic()))
                if state.consumer.acquire(timeout=wait):
                    taken = True
                    state.stop_requested = False
                    return True
                if deadline is not None and time.monotonic() >= deadline:
                    return False
        finally:
            if not taken:
                _unhold(state)
                if asked is not None:
                    self._cancel_stop(state)

    def _cancel_stop(self, state: _ProcessQueue) -> None:
        # Gave up taking over: a writer still running carries on; one that
        # stopped already is replaced if records wait.
        state.stop_requested = False
        if state.writer is None and state.pending():
            self._start_writer(state)

    def _let_go(self, state: _ProcessQueue) -> None:
        """Release ``state.consumer``; start a writer if records wait."""
        state.consumer.release()
        _unhold(state)  # after: a record put meanwhile is seen below
        if state.pending() and not state.inline:
            self._start_writer(state)

    def _write(self, state: _ProcessQueue) -> None:
        """The writer thread: holds ``state.consumer`` (its starter took it)
        until it is asked to stop, the handler goes inline, or this process
        turns out to be a forked child of the one that started it (a target
        forked on this thread)."""
        _held_here().append(state)
        items = state.items
        half_full = self._maxsize // 2
        short = min(_SHORT_BACKLOG, half_full)
        try:
            while not (state.stop_requested or state.inline or state.forked_away):
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
            _unhold(state)
            if not state.forked_away:
                state.writer = None
                state.consumer.release()
                if state.pending() and not state.stop_requested:
                    self._start_writer(state)  # records came as it went inline

    def _target_handlers(self) -> tuple[logging.Handler, ...]:
        """The targets, for the consumer."""
        targets = self._targets.handlers(self)
        if not self._registered_after_targets and self._targets.complete:
            # Targets named and found only now may be newer than this
            # handler, so their fork steps would run before ours (newest
            # first) and take their locks while our consumer still needs
            # them.  Registering again puts our step first; the fork steps
            # are idempotent.
            self._registered_after_targets = True
            _atfork.register(self)
        return targets

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
        state.in_hand = Batch(records, renderings, self._target_handlers())
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
            flush_targets(self._target_handlers(), reported)
        finally:
            for barrier in answered:
                barrier.done.set()

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
        with state.count_lock:
            counted = len(state.drops)
            for _ in range(counted):
                state.drops.popleft()
            state.drops_counted += counted
            count = state.drops_counted - state.drops_reported
            state.drops_reported = state.drops_counted
        if count:
            warning = note_record(
                f"safelog.QueueHandler dropped {count} record(s): queue full "
                f"(maxsize={self._maxsize}, overflow={self._overflow!r})",
                logging.WARNING,
            )
            batch = Batch([warning], [None], self._target_handlers())
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

        Safe from any thread, from a target or a signal handler (on the
        thread that consumes it writes the records itself) and after
        :meth:`close`.  The records are written by the writer thread, or
        in inline mode by the caller; it waits as long as the targets
        take."""
        state = self._current_state()
        if state in _held_here():
            self._drain(state, state.items.qsize(), report=True)
            flush_targets(self._target_handlers(), _reported_here(state))
            return
        idle = not state.inline and state.writer is None and not state.pending()
        if idle and self._take_consumer(state, 0):
            # Nothing queued and no writer: no thread to start for this.
            try:
                self._drain(state, None, report=True)
                flush_targets(self._target_handlers(), Exception)
            finally:
                self._let_go(state)
            return
        barrier = _Barrier()
        state.flushes.append(None)
        state.items.put(barrier)
        try:
            while True:
                if state.inline:
                    self._consume_here(state)
                elif state.writer is None:  # none yet, or stopped for a fork
                    self._start_writer(state)
                if barrier.done.wait(_BARRIER_POLL):
                    return
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
        on_consumer = state in _held_here()
        if on_consumer:
            self._drain(state, None, report=True)
        else:
            self._take_consumer(state, None)
        try:
            if not on_consumer:
                self._drain(state, None, report=True)
            if not self._targets_closed:
                self._targets_closed = True
                for target in self._targets.handlers(self):
                    try:
                        target.close()
                    except Exception:
                        report_target_error(target, note_record("(close)"))
        finally:
            if not on_consumer:
                self._let_go(state)
        _live_handlers.discard(self)
        super().close()

    def _retire_for_exit(self) -> None:
        """Exit hook: write what is queued, stop the writer; from now on each
        record is delivered on the thread that logs it."""
        state = self._current_state()
        state.inline = True
        self._consume_here(state)

    # -- fork (the at-fork registry's protocol) ----------------------------

    def before_fork(self, deadline: float) -> None:
        """Take the consumer lock before ``deadline``: the writer stops after
        the record in its hands and its thread ends; no writer starts until
        after the fork.  Nothing to do on a thread that consumes already (a
        target forking on the writer)."""
        state = self._state
        if state in _held_here():
            return  # consuming here, or registered twice and done already
        state.paused = True
        writer = state.writer
        if self._take_consumer(state, max(0.0, deadline - time.monotonic())):
            state.fork_holds_consumer = True
            if writer is not None:
                writer.join(max(0.0, deadline - time.monotonic()))
                _wait_os_thread_gone(writer, deadline)

    def after_fork_in_parent(self) -> None:
        """Let go of the consumer lock; a writer starts if records wait."""
        state = self._state
        state.paused = False
        if state.fork_holds_consumer:
            state.fork_holds_consumer = False
            self._let_go(state)
        elif state.writer is None and state.pending():
            self._start_writer(state)

    def after_fork_in_child(self) -> None:
        """Start afresh, inline: an empty queue, no writer, no drops counted.
        The parent writes what it had queued."""
        old = self._state
        old.forked_away = True
        _unhold(old)
        self._state = _ProcessQueue(inline=True)

    def __repr__(self) -> str:
        level = logging.getLevelName(self.level)
        names = [
            spec if isinstance(spec, str) else type(spec).__name__
            for spec in self._targets.specs
        ]
        return f"<safelog.QueueHandler ({level}) -> {names!r}>"


def flush() -> None:
    """Write everything logged so far through every ``safelog.QueueHandler``
    in this process, and flush their targets.

    Needed before ``os._exit()`` in a process that is not a forked child
    (a forked child writes each record before its log call returns)."""
    for handler in list(_live_handlers):
        handler.flush()


def _target_specs(handlers: Target | Iterable[Target]) -> tuple[Target, ...]:
    """``handlers`` as a tuple of targets: one handler or name is one target."""
    if isinstance(handlers, (logging.Handler, str)):
        return (handlers,)
    try:
        specs = tuple(handlers)
    except TypeError:
        raise TypeError(
            f"handlers must be a logging.Handler, a handler name, or a list of "
            f"them, got {handlers!r}"
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
    return BaseException if state.writer is threading.current_thread() else Exception


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
    for handler in list(_live_handlers):
        # One broken handler must not keep the others' records unwritten.
        with contextlib.suppress(Exception):
            handler._retire_for_exit()


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
            register_threading_exit(_retire_all_for_exit)
    atexit.register(_retire_all_for_exit)


_register_exit_hooks()
