"""The process-wide objects ``safelog.install()`` changes besides handlers and
``Logger.callHandlers``: ``logging.lastResort``, ``os._exit``, and what a
forked child does with ``sys.stdout`` and ``sys.stderr``.

Each change is made by one function here, which notes it in the report and
returns an object whose ``restore()`` undoes it; ``uninstall()`` calls that
with logging's module lock held.  A restore leaves alone a global that
someone else replaced since: it puts back only what is still ours.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from collections.abc import Callable
from typing import NoReturn, Protocol, TextIO, cast

from . import _atfork, _pending
from ._handlers import StreamHandler, stream_for_child
from ._inherited import reset_text_stream
from ._report import ReportDraft

__all__ = [
    "EXIT_FLUSH_TIMEOUT",
    "Restorable",
    "replace_last_resort",
    "reset_std_streams_at_fork",
    "wrap_os_exit",
]

EXIT_FLUSH_TIMEOUT = 1.0
"""Seconds the wrapped ``os._exit`` waits for queued records to be written."""


class Restorable(Protocol):
    def restore(self) -> None:
        """Undo the change, if what is in place is still ours."""


# --- sys.stdout and sys.stderr in a forked child ---------------------------------


class StdStreamsReset:
    """At-fork participant: in a forked child, ``sys.stdout``, ``sys.stderr``
    and the interpreter's own ``sys.__stdout__``/``sys.__stderr__`` get a fresh
    buffer lock and drop the bytes the parent had buffered in them.

    The stream objects stay the same, with their encoding, errors, line
    buffering, mode and descriptor.  Text pending in the text layer is dropped
    too for the interpreter's own streams, whose ``newline`` is known ("\\n"
    on POSIX); for another text stream in ``sys.stdout``, up to one chunk of
    text the parent had not yet passed to the buffer may be written again by
    the child.
    """

    def __init__(self) -> None:
        self.active = True

    def restore(self) -> None:
        # The registry drops it once nothing references it; until then it
        # must do nothing.
        self.active = False

    def before_fork(self, deadline: float) -> None:
        """Nothing to do: the buffer lock cannot be taken with a timeout, and
        the child throws away what the parent had buffered."""

    def after_fork_in_parent(self) -> None:
        """Nothing was taken."""

    def after_fork_in_child(self) -> None:
        if not self.active:
            return
        own_streams = (sys.__stdout__, sys.__stderr__)
        seen: set[int] = set()
        for stream in (sys.stdout, sys.stderr, *own_streams):
            if stream is None or id(stream) in seen:
                continue
            seen.add(id(stream))
            own = any(stream is own_stream for own_stream in own_streams)
            # POSIX: the interpreter opens its std streams with newline="\n".
            reset_text_stream(
                stream, newline="\n", known_newline=own and os.name == "posix"
            )


def reset_std_streams_at_fork(draft: ReportDraft) -> StdStreamsReset:
    reset = StdStreamsReset()
    _atfork.register(reset)
    draft.changed(
        "sys.stdout, sys.stderr",
        (),
        "get a fresh buffer in every forked child: print() there cannot hang on "
        "a lock a parent thread held at fork, nor write again what the parent "
        "had buffered",
    )
    return reset


# --- os._exit ----------------------------------------------------------------------


def _flush_queued_records(timeout: float) -> None:
    """Wait at most ``timeout`` seconds for ``safelog.flush()``: a barrier
    behind every queued record.  It runs on a thread of its own so that a
    stuck handler can delay the exit, never stop it."""
    try:
        barrier = threading.Thread(
            target=_pending.flush, name="safelog-exit-flush", daemon=True
        )
        barrier.start()
    except RuntimeError:  # no new threads at interpreter shutdown
        return
    barrier.join(timeout)


def _flushing_first(
    original_exit: Callable[[int], NoReturn],
) -> Callable[[int], NoReturn]:
    def _exit(status: int) -> NoReturn:
        """``os._exit`` after writing safelog's queued records (a barrier
        with a bounded wait, see ``safelog.install``)."""
        # Nothing may keep the process from exiting: the caller asked to
        # leave at once, so a failing flush is ignored.
        with contextlib.suppress(BaseException):
            _flush_queued_records(EXIT_FLUSH_TIMEOUT)
        original_exit(status)

    _exit.__wrapped__ = original_exit  # type: ignore[attr-defined]
    return _exit


class _ExitWrap:
    def __init__(self) -> None:
        self.original = os._exit
        self.ours = _flushing_first(self.original)
        os._exit = self.ours  # type: ignore[assignment]

    def restore(self) -> None:
        if os._exit is self.ours:
            os._exit = self.original


def wrap_os_exit(draft: ReportDraft) -> Restorable:
    wrap = _ExitWrap()
    draft.changed(
        "os._exit",
        (),
        "writes safelog's queued records first (waiting at most "
        f"{EXIT_FLUSH_TIMEOUT:g} s), so a forked child that leaves through it "
        "loses none",
    )
    return wrap


# --- logging.lastResort -------------------------------------------------------------


class _LastResortHandler(StreamHandler):
    """safelog's ``logging.lastResort``: like the standard one, its ``stream``
    is whatever ``sys.stderr`` is at the time of each record, and cannot be
    assigned (``setStream`` and ``handler.stream = ...`` raise
    ``AttributeError``, as on the standard one); in a forked child, while
    ``sys.stderr`` is still the object inherited from the parent, it writes
    straight to that object's descriptor instead, never through its
    buffer."""

    def __init__(self, level: int) -> None:
        self._inherited_stderr: object = None
        self._child_stream: TextIO | None = None
        # As the standard one: no stream of its own to set.
        logging.Handler.__init__(self, level)
        self._register_for_fork()

    @property
    def stream(self) -> TextIO:  # type: ignore[override]
        current = sys.stderr
        if self._child_stream is not None and current is self._inherited_stderr:
            return self._child_stream
        return current

    def _start_afresh_in_child(self) -> None:
        self._inherited_stderr = sys.stderr
        self._child_stream = cast("TextIO | None", stream_for_child(sys.stderr))


class _LastResortSwap:
    def __init__(self, original: logging.Handler) -> None:
        self.original = original
        self.ours = _LastResortHandler(original.level)
        logging.lastResort = self.ours

    def restore(self) -> None:
        if logging.lastResort is self.ours:
            logging.lastResort = self.original
        self.ours.close()


def replace_last_resort(draft: ReportDraft) -> Restorable | None:
    """Replace the standard ``logging.lastResort``; leave anything else
    there alone (a program that set its own chose it)."""
    current = logging.lastResort
    if current is None or type(current) is not logging._StderrHandler:  # type: ignore[attr-defined]
        draft.left_alone(
            f"logging.lastResort = {current!r}",
            (),
            "not the standard last resort handler",
        )
        return None
    swap = _LastResortSwap(current)
    draft.changed(
        "logging.lastResort",
        (),
        "replaced by a safelog handler that writes to sys.stderr, and in a "
        "forked child straight to its descriptor",
    )
    return swap
