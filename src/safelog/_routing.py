"""``install(queue=True)``: every logger's handlers run on one writer thread.

The invariant: while routing is on, ``Logger.callHandlers`` queues each
record once, taking no lock, for one shared ``safelog.QueueHandler``, and its
writer thread hands the record to exactly the handlers the standard
``callHandlers`` would have called on the logging thread (those of the
record's logger and its ancestors, by level and ``propagate``, or else
``logging.lastResort``), with the lists as they are when it does.  A record
logged on a thread that is delivering (by a handler) is handled at once,
as without the queue, not queued behind the record whose handler logged it.

Why ``Logger.callHandlers`` is replaced on the class, rather than each
logger's handlers moved behind a ``QueueHandler`` in its list (the pattern
the standard library documents):

* every record passes through it once, after the logger's level and filters
  (which stay on the logging thread, where the context they read lives) and
  before any handler;
* each logger's ``handlers`` list stays as the program set it, so
  ``removeHandler`` and code that inspects the lists (a framework's, a
  test's) see what they expect;
* loggers created, and handlers added, after ``install()`` are covered;
* a record is queued once per log call, on one queue, whose one writer keeps
  the order; moved behind a queue per logger, a record would be queued once
  per logger on its way up to the root.

A ``Logger`` subclass that overrides ``callHandlers`` runs its own code,
unrouted; ``install()`` reports it.

The writer must know the logger a record was logged on, and the queue
carries only a record's class and a copy of its ``__dict__``.  So the
logger is handed to the queue beside the record
(``QueueHandler._emit_carrying``), which puts it in that copy alone, under
the private key ``_safelog_origin``; the dispatcher takes it out before any
handler sees the record.  The logged record never holds the key: no
filter, handler or formatter, nor anything reading the record while it is
queued (a record class's ``getMessage``), sees it.  On the calling thread
that is one entry added to the copy the queue makes anyway; a carrier record
made for the queue alone would copy the ``__dict__`` twice per log call, on
the path ``queue=True`` exists to keep short (measured: a tenth slower).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
from collections.abc import Callable
from typing import Any

from . import _replacements
from ._loggers import all_loggers
from ._queue import QueueHandler
from ._report import ReportDraft

__all__ = ["QueueRouting", "start_routing", "stop_routing"]

CallHandlers = Callable[[logging.Logger, Any], None]

#: The key, in the queued copy of a record, of the logger it was logged on.
_ORIGIN = "_safelog_origin"
#: Set on a thread while it hands records to handlers: a record logged there
#: (by a handler) is handled at once, never queued again.
_delivering = threading.local()


class _Dispatcher(logging.Handler):
    """The shared QueueHandler's one target: it calls the handlers of the
    logger a record was logged on and of its ancestors, exactly as
    ``Logger.callHandlers`` does (levels, ``propagate``,
    ``logging.lastResort``), with the lists as they are at that moment."""

    def __init__(self, call_handlers: CallHandlers) -> None:
        super().__init__()
        self._call_handlers = call_handlers

    def handle(self, record: logging.LogRecord) -> bool:
        origin = record.__dict__.pop(_ORIGIN, None)
        if not isinstance(origin, logging.Logger):
            return False
        _delivering.active = True
        try:
            self._call_handlers(origin, record)
        finally:
            _delivering.active = False
        return True

    def emit(self, record: logging.LogRecord) -> None:
        """Unused: :meth:`handle` does the work."""

    def flush(self) -> None:
        """Flush every handler on a logger (``safelog.flush()`` ends here)."""
        seen: set[int] = set()
        for logger in all_loggers():
            for handler in list(logger.handlers):
                if id(handler) not in seen:
                    seen.add(id(handler))
                    with contextlib.suppress(Exception):
                        handler.flush()

    def __repr__(self) -> str:
        return "<safelog install dispatcher>"


@dataclasses.dataclass
class QueueRouting:
    """``install(queue=True)`` in force."""

    queue_handler: QueueHandler
    replaced: CallHandlers
    """What ``Logger.callHandlers`` was before: the standard one, unless
    another library had replaced it first."""


_routing: QueueRouting | None = None
# What a call that finds routing off uses: the callHandlers routing replaced
# last.  A thread may have looked up our function just before stop_routing().
_unrouted: CallHandlers = logging.Logger.callHandlers


def _call_handlers_through_queue(self: logging.Logger, record: Any) -> None:
    """``Logger.callHandlers`` while routing is on: queue the record for the
    writer thread; take no lock."""
    routing = _routing
    if routing is None or getattr(_delivering, "active", False):
        _unrouted(self, record)
        return
    if record.exc_info and not record.exc_text:
        _cache_exc_text(self, record)
    # Emitted, not handled: the shared handler has no filters to run, since
    # nothing but this module holds it.
    routing.queue_handler._emit_carrying(record, _ORIGIN, self)


def _cache_exc_text(logger: logging.Logger, record: logging.LogRecord) -> None:
    # Done on the calling thread, where the traceback is still intact, with
    # the formatter of the first handler the record reaches, as the standard
    # Formatter.format caches it in exc_text for the handlers after it.
    assert record.exc_info is not None
    current: logging.Logger | None = logger
    while current is not None:
        for handler in current.handlers:
            if record.levelno >= handler.level:
                formatter = handler.formatter or logging.Formatter()
                with contextlib.suppress(Exception):
                    record.exc_text = formatter.formatException(record.exc_info)
                return
        current = current.parent if current.propagate else None


def start_routing(draft: ReportDraft) -> QueueRouting:
    """Replace ``Logger.callHandlers`` and start the shared queue; note both
    in ``draft``.  Called with logging's module lock held."""
    global _routing, _unrouted
    draft.add_to_every_handler(
        "runs only on the writer thread of the shared safelog.QueueHandler"
    )
    for logger in all_loggers():
        if type(logger).callHandlers is not logging.Logger.callHandlers:
            draft.left_alone(
                repr(logger),
                (),
                f"{_replacements.class_path(type(logger))} overrides "
                "callHandlers: its handlers are called on the logging thread",
            )
    replaced = logging.Logger.__dict__["callHandlers"]
    _unrouted = replaced
    _routing = QueueRouting(QueueHandler([_Dispatcher(replaced)]), replaced)
    logging.Logger.callHandlers = _call_handlers_through_queue  # type: ignore[method-assign]
    draft.changed(
        "logging.Logger.callHandlers",
        (),
        "queues each record for one shared safelog.QueueHandler: logging "
        "threads take no handler lock, and every handler runs on its writer "
        "thread, which is quiet at fork",
    )
    return _routing


def stop_routing(routing: QueueRouting) -> None:
    """Write what is queued, put ``Logger.callHandlers`` back (if it is still
    ours) and stop the queue.  Called without logging's module lock: the
    writer thread, which this waits for, may need it in a handler."""
    global _routing
    routing.queue_handler.flush()  # the queued records keep their order
    if logging.Logger.__dict__.get("callHandlers") is _call_handlers_through_queue:
        logging.Logger.callHandlers = routing.replaced  # type: ignore[method-assign, assignment]
    _routing = None
    routing.queue_handler.close()  # writes what came in meanwhile; stops it
