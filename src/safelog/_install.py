"""``safelog.install()`` and ``safelog.uninstall()``: make a logging
configuration fork-safe, in place, and undo it.

Everything safelog does to global state starts here, in this order:

1. each handler on a logger is made fork-safe in place (``_inplace``),
   without logging's module lock: a handler busy in another thread is waited
   for, and other threads may create loggers and fork meanwhile;
2. with logging's module lock held, so that no configuration change comes in
   between: ``logging.lastResort`` is replaced, ``Logger.callHandlers`` too
   with ``queue=True`` (``_routing``), the std streams are reset in forked
   children, and ``os._exit`` is wrapped (``_globals``).

``uninstall()`` undoes them in the opposite order.  One ``install()`` or
``uninstall()`` runs at a time; what either has to say goes in the report
(``_report``).
"""

from __future__ import annotations

import dataclasses
import threading

from . import _atfork
from ._globals import (
    EXIT_FLUSH_TIMEOUT,
    Restorable,
    replace_last_resort,
    reset_std_streams_at_fork,
    wrap_os_exit,
)
from ._inplace import Conversion, make_fork_safe_in_place
from ._loggers import handlers_with_loggers, logging_lock
from ._report import InstallReport, ReportDraft, ReportEntry
from ._routing import QueueRouting, start_routing, stop_routing

__all__ = ["EXIT_FLUSH_TIMEOUT", "InstallReport", "ReportEntry", "install", "uninstall"]


class _ForkWatch:
    """At-fork participant: records whether this process was forked while
    other threads ran, so that an ``install()`` called in such a child
    treats its handlers' streams and sockets as the parent's (see
    ``_inplace.make_fork_safe_in_place``).  Only forks made after safelog
    was imported are seen."""

    def __init__(self) -> None:
        self.threads_at_fork = 1
        self.forked_with_threads = False

    def streams_are_the_parents(self) -> bool:
        """Whether the handlers' streams and sockets may be in use by a
        parent thread: only while this child runs no thread of its own yet
        (one could be writing to a stream the child step re-initialises)."""
        return self.forked_with_threads and threading.active_count() == 1

    def before_fork(self, deadline: float) -> None:
        self.threads_at_fork = threading.active_count()

    def after_fork_in_parent(self) -> None:
        """Nothing was taken."""

    def after_fork_in_child(self) -> None:
        global _install_lock
        # A grandchild inherits what its parent inherited, unless reset.
        self.forked_with_threads = self.forked_with_threads or self.threads_at_fork > 1
        # A parent thread may have been inside install() at the fork.
        _install_lock = threading.Lock()


_fork_watch = _ForkWatch()
_atfork.register(_fork_watch)


@dataclasses.dataclass
class _Installed:
    queue: bool
    std_streams: bool
    conversions: list[Conversion]
    routing: QueueRouting | None
    changes: list[Restorable]
    """Undone with logging's module lock held, newest first."""


_installed: _Installed | None = None
_install_lock = threading.Lock()
# Handlers uninstall() could not give their class back (busy for
# HANDLER_LOCK_TIMEOUT): they stay safelog handlers, with their fork steps.
_still_converted: list[Conversion] = []


def install(*, queue: bool = False, std_streams: bool = True) -> InstallReport:
    """Make the current logging configuration fork-safe, in place.

    Call it once, after logging is configured.  Each handler on a logger whose
    class is exactly a standard class that safelog replaces becomes, in
    place, the safelog handler with the same name: the same object, so every
    reference the program holds (``logging.getHandlerByName``, a variable,
    dictConfig's registry) is the converted handler, with its level,
    formatter, filters, lock and stream or file.  Each is converted under
    its own lock, so a record is written wholly by the standard code or
    wholly by safelog's; other threads may log meanwhile, and no record is
    lost or written twice.  A handler that stays busy in another thread for
    ``HANDLER_LOCK_TIMEOUT`` seconds is left as it is (and reported); the
    wait holds no lock of logging's, so other threads may create loggers,
    configure logging and fork meanwhile.  ``logging.lastResort`` is
    replaced too, and ``os._exit`` first writes safelog's queued records
    (waiting at most ``EXIT_FLUSH_TIMEOUT`` seconds).

    In a process forked while other threads ran (a server's worker, from a
    ``post_fork`` hook), ``install()`` is safe and bounded: it takes no lock
    a vanished parent thread may hold, and, while the child runs no thread
    of its own yet, treats the handlers' streams and sockets as the
    parent's, as safelog's handlers do in a child.  It knows the process was
    forked only when safelog was imported before the fork; otherwise a file
    handler whose stream buffer stays locked for ``STREAM_FLUSH_TIMEOUT``
    seconds is left as it is.

    ``queue=True`` also routes every logger's handlers through one shared
    ``safelog.QueueHandler``: logging threads never take a handler lock, and
    every handler, third-party ones included, runs only on its writer thread,
    which is quiet at fork.

    ``std_streams=True`` (the default) gives ``sys.stdout`` and ``sys.stderr``
    a fresh buffer in every forked child, so that ``print()`` there never
    hangs on a lock a parent thread held at fork, and never writes again the
    bytes the parent had buffered (which the parent writes).

    Returns a report of what changed and what was left alone, and why, with
    each handler once.  A second call with the same options changes nothing
    and returns a report whose ``already_installed`` is True; with other
    options, it raises ``ValueError`` (call :func:`uninstall` first).
    Handlers added after this call are not converted.
    """
    global _installed
    _check_flags(queue=queue, std_streams=std_streams)
    with _install_lock:
        if _installed is not None:
            _check_same_options(_installed, queue=queue, std_streams=std_streams)
            return InstallReport(already_installed=True)
        draft = ReportDraft()
        with logging_lock():  # a snapshot of the lists: no waiting in here
            found = handlers_with_loggers()
        conversions, buffer_drops = make_fork_safe_in_place(
            found, draft, forked=_fork_watch.streams_are_the_parents()
        )
        with logging_lock():
            routing, changes = _change_globals(draft, queue, std_streams)
            _installed = _Installed(
                queue, std_streams, conversions, routing, [*buffer_drops, *changes]
            )
        return draft.finish()


def _check_flags(**flags: object) -> None:
    for name, value in flags.items():
        if not isinstance(value, bool):
            raise TypeError(f"{name} must be True or False, got {value!r}")


def _check_same_options(
    installed: _Installed, *, queue: bool, std_streams: bool
) -> None:
    if (installed.queue, installed.std_streams) != (queue, std_streams):
        raise ValueError(
            f"safelog is already installed with queue={installed.queue}, "
            f"std_streams={installed.std_streams}; call safelog.uninstall() "
            f"before installing with queue={queue}, std_streams={std_streams}"
        )


def _change_globals(
    draft: ReportDraft, queue: bool, std_streams: bool
) -> tuple[QueueRouting | None, list[Restorable]]:
    """Everything install() changes besides the handlers, in the order the
    report lists it (logging's module lock held)."""
    changes: list[Restorable] = []
    last_resort = replace_last_resort(draft)
    if last_resort is not None:
        changes.append(last_resort)
    routing = start_routing(draft) if queue else None
    if std_streams:
        changes.append(reset_std_streams_at_fork(draft))
    changes.append(wrap_os_exit(draft))
    return routing, changes


def uninstall() -> bool:
    """Undo :func:`install`: give every converted handler its standard class
    back, in place, and put back ``logging.lastResort`` and ``os._exit``,
    and stop resetting the std streams at fork.  Returns False if safelog
    was not installed.

    Each handler keeps its name, level, formatter, filters and lock, and a
    file handler keeps the descriptor it writes through (appending).  A
    handler busy in another thread for ``HANDLER_LOCK_TIMEOUT`` seconds
    stays a safelog handler.  Nothing here closes a handler or changes a
    logger's list or ``logging._handlers``: a configuration made since
    ``install()`` is left as it is.
    """
    global _installed
    with _install_lock:
        installed = _installed
        if installed is None:
            return False
        if installed.routing is not None:
            # Outside logging's module lock: the writer thread, which this
            # waits for, may need it in a handler.
            stop_routing(installed.routing)
        with logging_lock():
            _installed = None
            for change in reversed(installed.changes):
                change.restore()
        # Outside logging's module lock, as install() converts them.
        for conversion in reversed(installed.conversions):
            if not conversion.restore_under_lock():
                _still_converted.append(conversion)
        return True
