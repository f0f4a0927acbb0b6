"""``safelog.install()``: make a logging configuration fork-safe, in place.

Everything safelog does to global state lives here, and ``uninstall()`` undoes
it.  ``install()``:

* converts in place each handler on the root logger and on every logger in
  the manager whose class is exactly a standard class that safelog replaces:
  the object stays the same (every reference to it, every logger's list,
  ``logging._handlers``) and becomes an instance of the safelog class, with
  the state that class's ``__init__`` would have set up (see
  :class:`_Conversion`);
* replaces ``logging.lastResort``;
* with ``queue=True``, routes every logger's handlers through one shared
  ``safelog.QueueHandler``, so only its writer thread ever runs a handler;
* wraps ``os._exit`` so that records still queued are written first;
* with ``std_streams=True``, gives ``sys.stdout`` and ``sys.stderr`` fresh
  buffers in every forked child (see :class:`_StdStreamsReset`).

No handler is closed or removed: ``uninstall()`` gives each converted handler
its standard class back, in place.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import io
import logging
import logging.handlers
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, NoReturn, TextIO, cast

from . import _atfork, _pending, _replacements
from ._handlers import (
    ForkSafeHandler,
    StreamHandler,
    set_append,
    stream_for_child,
)
from ._inherited import reset_text_stream
from ._network import Outage, SocketHandler, SysLogHandler
from ._queue import QueueHandler
from ._rotating import (
    LOCK_FILE_SUFFIX,
    InterProcessLock,
    SharedRotation,
    TimedRotatingFileHandler,
)
from ._stream import DescriptorStream
from ._watched import WatchedFileHandler

__all__ = ["EXIT_FLUSH_TIMEOUT", "InstallReport", "ReportEntry", "install", "uninstall"]

EXIT_FLUSH_TIMEOUT = 1.0
"""Seconds the wrapped ``os._exit`` waits for queued records to be written."""

#: How long install() and uninstall() wait for a handler that is busy in
#: another thread before they leave it as it is (holding none of logging's
#: locks meanwhile).
HANDLER_LOCK_TIMEOUT = 5.0


# --- the report ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ReportEntry:
    """One thing ``install()`` changed or left alone, where, and why."""

    subject: str
    """The handler's repr, or the global that was changed (``os._exit``)."""
    loggers: tuple[str, ...]
    """Names of the loggers whose handler list holds it ("root" for the
    root logger); empty for a global."""
    reason: str

    def __str__(self) -> str:
        where = f" on {', '.join(map(repr, self.loggers))}" if self.loggers else ""
        return f"{self.subject}{where}: {self.reason}"


@dataclasses.dataclass(frozen=True)
class InstallReport:
    """What ``safelog.install()`` changed and what it left alone, and why."""

    already_installed: bool
    """True when safelog was installed already, and this call changed
    nothing."""
    changed: tuple[ReportEntry, ...] = ()
    left_alone: tuple[ReportEntry, ...] = ()

    def __str__(self) -> str:
        if self.already_installed:
            lines = ["safelog is already installed; nothing changed."]
        else:
            # Each handler has one entry, with the loggers that hold it; an
            # entry for a global (os._exit, lastResort) has none.
            converted = sum(1 for entry in self.changed if entry.loggers)
            kept = sum(1 for entry in self.left_alone if entry.loggers)
            lines = [
                f"safelog installed: {converted} of {converted + kept} handlers "
                f"converted, {kept} left alone."
            ]
        for title, entries in (
            ("changed", self.changed),
            ("left alone", self.left_alone),
        ):
            if entries:
                lines.append(f"{title}:")
                lines.extend(f"  {entry}" for entry in entries)
        return "\n".join(lines)


# --- std streams in a forked child ---------------------------------------------


class _StdStreamsReset:
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


# --- os._exit -------------------------------------------------------------------


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


def _wrap_exit(original_exit: Callable[[int], NoReturn]) -> Callable[[int], NoReturn]:
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


# --- logging.lastResort --------------------------------------------------------


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


# --- converting a handler in place ----------------------------------------------


def _append_mode(mode: str) -> str:
    # The file is open already: "w" truncated it once, and must not again.
    return mode.replace("w", "a").replace("x", "a")


#: How long install() lets a file handler's stream flush before it leaves
#: the handler as it is: longer means another thread holds the stream's
#: buffer lock, for ever in a child forked while a parent thread held it.
STREAM_FLUSH_TIMEOUT = 1.0


def _flush_within(stream: Any, timeout: float) -> bool:
    """Flush ``stream`` on a thread of its own; False if that took longer
    than ``timeout`` seconds (the thread is left waiting), else True.
    Re-raises what the flush raised."""
    done = threading.Event()
    failures: list[BaseException] = []

    def flush() -> None:
        try:
            stream.flush()
        except BaseException as error:  # re-raised by the caller
            failures.append(error)
        finally:
            done.set()

    threading.Thread(target=flush, name="safelog-install-flush", daemon=True).start()
    if not done.wait(timeout):
        return False
    if failures:
        raise failures[0]
    return True


def _open_file_identity(stream: object) -> tuple[int, int] | None:
    try:
        opened = os.fstat(stream.fileno())  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):
        return None
    return opened.st_dev, opened.st_ino


def _safelog_state(
    handler: Any, safelog_class: type[ForkSafeHandler]
) -> dict[str, Any]:
    """The instance attributes that ``safelog_class.__init__`` sets beyond
    what the standard class's ``__init__`` set on ``handler``."""
    # What safelog's handle() reads, as instance attributes (class defaults
    # otherwise): a thread that entered it just before uninstall() reads
    # them after the class is back.
    state: dict[str, Any] = {
        "_reentrant": collections.deque(),
        "_emitting": False,
        "_owed_after_emit": False,
        "_locks_through_methods": safelog_class._locks_through_methods,
        # Its process: in another one, a fork ran no at-fork hook.
        "_owner_pid": os.getpid(),
    }
    if issubclass(safelog_class, SharedRotation):
        state["_file_lock"] = InterProcessLock(handler.baseFilename + LOCK_FILE_SUFFIX)
        stream = handler.stream
        state["_open_file"] = None if stream is None else _open_file_identity(stream)
    if issubclass(safelog_class, TimedRotatingFileHandler):
        # The schedule the handler kept (rolloverAt) is the standard rule's,
        # made from the file at the path: other processes may refine it.
        state["_schedule_of"] = None
        state["_schedule_from_init"] = True
        try:
            found = os.stat(handler.baseFilename)
        except OSError:
            state["_init_file"] = None
        else:
            state["_init_file"] = (found.st_dev, found.st_ino)
    if issubclass(safelog_class, WatchedFileHandler):
        state["_opened_before"] = handler.stream is not None
    if issubclass(safelog_class, (SocketHandler, SysLogHandler)):
        state["_outage"] = Outage()
    if issubclass(safelog_class, SocketHandler):
        state["_connect_error"] = ""
    return state


def _takes_over_descriptor(handler: Any) -> bool:
    """Whether ``handler`` is a file handler whose open stream is a text file
    from ``open()``, which becomes a :class:`DescriptorStream` on the same
    descriptor (as ``safelog.FileHandler`` opens its files)."""
    stream = getattr(handler, "stream", None)
    return (
        isinstance(handler, logging.FileHandler)
        and type(stream) is io.TextIOWrapper
        and type(stream.buffer) is io.BufferedWriter
        and type(stream.buffer.raw) is io.FileIO
    )


class _Conversion:
    """One handler converted in place: its original class and mode, the
    attributes the conversion added, and the handler's part in the fork steps
    while it is converted.

    The handler itself is not registered with the at-fork registry (which
    holds participants until they are garbage collected): after
    :meth:`restore` it is a standard handler again, with no fork steps."""

    def __init__(self, handler: logging.Handler, original_class: type) -> None:
        self.handler = handler
        self.original_class = original_class
        self.original_mode: str | None = getattr(handler, "mode", None)
        self.active = False

    def _converted(self) -> Any:
        return self.handler if self.active else None

    def before_fork(self, deadline: float) -> None:
        handler = self._converted()
        if handler is not None:
            handler.before_fork(deadline)

    def after_fork_in_parent(self) -> None:
        handler = self._converted()
        if handler is not None:
            handler.after_fork_in_parent()

    def after_fork_in_child(self) -> None:
        handler = self._converted()
        if handler is not None:
            handler.after_fork_in_child()

    def convert(self, safelog_class: type, *, forked: bool) -> str | None:
        """Make the handler a ``safelog_class`` handler, or return why not.
        Called with the handler lock held, so no record is half written by
        the standard code; a thread that calls ``handle()`` afterwards, or
        is waiting for the lock inside the standard ``handle()``, runs
        ``safelog_class.emit``.  ``forked``: this process was forked while
        other threads ran, so the handler's stream may be the parent's
        (see :class:`_ForkWatch`)."""
        handler: Any = self.handler
        stream: Any = None
        if _takes_over_descriptor(handler) and not forked:
            try:
                if not _flush_within(handler.stream, STREAM_FLUSH_TIMEOUT):
                    return (
                        f"its stream's buffer was busy for {STREAM_FLUSH_TIMEOUT:g} s "
                        "(in a process forked while another thread wrote to it, "
                        "import safelog before the fork)"
                    )
            except Exception as error:  # its pending bytes stay with it
                return f"could not be flushed: {error!r}"
            stream = DescriptorStream.from_text_file(
                handler.stream, _append_mode(handler.mode)
            )
            set_append(stream.fileno())
        state = _safelog_state(handler, safelog_class)
        # A fork in another thread copies the handler either before or after
        # the change, never half way: the fork steps hold the registry lock.
        with _atfork_registry_lock():
            if stream is not None:
                handler.stream = stream
            if self.original_mode is not None and handler.stream is not None:
                handler.mode = _append_mode(self.original_mode)
            vars(handler).update(state)
            handler.__class__ = safelog_class
            if forked:
                # What the child step would have done at the fork: the
                # inherited stream and socket are the parent's.
                handler._quiet_at_fork = False
                handler._start_afresh_in_child()
            self.active = True
        return None

    def restore(self) -> None:
        """Give the handler its standard class back (with its lock held).

        It keeps the stream it has now (a :class:`DescriptorStream` for a
        file: the standard class writes through it as through any text
        file), and safelog's attributes, unused by the standard class: a
        thread that entered safelog's ``handle()`` just before still reads
        them once it has the lock."""
        handler: Any = self.handler
        with _atfork_registry_lock():
            self.active = False
            file_lock = vars(handler).get("_file_lock")
            if file_lock is not None:
                with contextlib.suppress(OSError):
                    file_lock.close()
            if self.original_mode is not None:
                handler.mode = self.original_mode
            handler.__class__ = self.original_class


#: Standard classes that buffer records: safelog has no class for them, but a
#: forked child can start with an empty buffer (the records buffered at fork
#: are the parent's to write).
_BUFFERING = frozenset(
    {"logging.handlers.MemoryHandler", "logging.handlers.BufferingHandler"}
)


class _BufferDrop:
    """At-fork participant for a standard ``MemoryHandler`` or
    ``BufferingHandler``, whose class stays as it is: the fork waits (within
    the fork timeout) until no thread is inside it, and the child starts
    with an empty buffer, so the records buffered at fork are written once,
    by the parent."""

    def __init__(self, handler: logging.Handler) -> None:
        self.handler = handler
        self.active = True
        self._locked = False

    def before_fork(self, deadline: float) -> None:
        lock = self.handler.lock
        if self.active and lock is not None:
            timeout = max(0.0, deadline - time.monotonic())
            self._locked = lock.acquire(timeout=timeout)

    def after_fork_in_parent(self) -> None:
        if self._locked:
            self._locked = False
            assert self.handler.lock is not None
            self.handler.lock.release()

    def after_fork_in_child(self) -> None:
        lock: Any = self.handler.lock
        # logging's own child step gives the handler a fresh lock; a lock it
        # does not know of is still held by this thread.
        if self._locked and lock._is_owned():
            lock.release()
        self._locked = False
        if self.active:
            self.handler.buffer = []  # type: ignore[attr-defined]


@contextlib.contextmanager
def _atfork_registry_lock() -> Iterator[None]:
    # Looked up each time: a forked child gets a new one.
    with _atfork._registry_lock:
        yield


class _ForkWatch:
    """At-fork participant: records whether this process was forked while
    other threads ran, so that an ``install()`` called in such a child
    treats its handlers' streams and sockets as the parent's (see
    :meth:`_Conversion.convert`).  Only forks made after safelog was
    imported are seen."""

    def __init__(self) -> None:
        self.threads_at_fork = 1
        self.forked_with_threads = False

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


# --- walking the configuration ------------------------------------------------


@contextlib.contextmanager
def _logging_lock() -> Iterator[None]:
    # logging._lock is an RLock on 3.9 to 3.13; holding it keeps addHandler,
    # removeHandler, getLogger and dictConfig out while the loggers change.
    lock = getattr(logging, "_lock", None)
    if lock is None:
        yield
        return
    with lock:
        yield


def _loggers() -> list[logging.Logger]:
    loggers: list[logging.Logger] = [logging.root]
    for logger in list(logging.root.manager.loggerDict.values()):
        if isinstance(logger, logging.Logger):  # not a PlaceHolder
            loggers.append(logger)
    return loggers


def _logger_name(logger: logging.Logger) -> str:
    return "root" if logger is logging.root else logger.name


def _handlers_by_identity() -> dict[int, tuple[logging.Handler, list[logging.Logger]]]:
    """Every handler on a logger, once, with the loggers that hold it, in the
    order they were first met."""
    found: dict[int, tuple[logging.Handler, list[logging.Logger]]] = {}
    for logger in _loggers():
        for handler in logger.handlers:
            entry = found.setdefault(id(handler), (handler, []))
            if logger not in entry[1]:
                entry[1].append(logger)
    return found


def _why_left_alone(handler: logging.Handler) -> str | None:
    """Why ``handler`` is not converted, or None if it can be.  A closed
    handler that is still on a logger is converted: it is live (a closed
    file handler opens its file again for the next record, and dictConfig
    closes the handlers it replaces while leaving them attached)."""
    cls = type(handler)
    if cls.__module__ == "safelog" or cls.__module__.startswith("safelog."):
        return "already a safelog handler"
    replacement = _replacements.replacement_for(cls)
    if replacement is None:
        for base in cls.__mro__[1:]:
            if _replacements.replacement_for(base) is not None:
                return (
                    f"a subclass of {_replacements.class_path(base)}: safelog cannot "
                    "know what it overrides, so it does not convert it"
                )
        if isinstance(handler, logging.handlers.BufferingHandler):
            return (
                "no safelog replacement for this class; hazard: the records it "
                "holds at a fork are copied into the child, so both processes "
                "write them (flush it before forking, or use capacity=1)"
            )
        return "no safelog replacement for this class"
    if _replacements.class_path(cls) not in _CONVERTIBLE:
        return (
            f"{replacement.safelog_path} works differently (it writes through "
            "target handlers, not a queue), so it cannot take this one's place; "
            f"hazard: {replacement.hazard}"
        )
    if _replacements.safelog_class_for(cls) is None:
        return f"{replacement.safelog_path} is not in this version of safelog"
    return None


#: The standard classes whose handlers become the safelog class in place.
_CONVERTIBLE = frozenset(
    {
        "logging.StreamHandler",
        "logging.FileHandler",
        "logging.handlers.WatchedFileHandler",
        "logging.handlers.RotatingFileHandler",
        "logging.handlers.TimedRotatingFileHandler",
        "logging.handlers.SocketHandler",
        "logging.handlers.DatagramHandler",
        "logging.handlers.SysLogHandler",
    }
)


_BUFFER_DROP_REASON = (
    "class kept (safelog has none for it); made fork-safe in place: a fork "
    "waits until no thread is inside it, and the child starts with an empty "
    "buffer, so the records buffered at fork are written once, by the parent "
    "(its target is converted only if it is on a logger too)"
)


def _convert_handlers(
    found: list[tuple[logging.Handler, tuple[str, ...]]],
    changed: list[ReportEntry],
    left_alone: list[ReportEntry],
    buffer_drops: list[_BufferDrop],
) -> list[_Conversion]:
    """Convert each handler in ``found`` that safelog replaces; report each
    handler once.  Called without logging's module lock: a busy handler is
    waited for (at most ``HANDLER_LOCK_TIMEOUT`` seconds) while other
    threads create loggers and fork."""
    conversions: list[_Conversion] = []
    # Only while the child runs no thread of its own yet: a thread could be
    # writing to a stream the child step would re-initialise under it.
    forked = _fork_watch.forked_with_threads and threading.active_count() == 1
    for handler, names in found:
        subject = repr(handler)
        if _replacements.class_path(type(handler)) in _BUFFERING:
            drop = _BufferDrop(handler)
            _atfork.register(drop)
            buffer_drops.append(drop)
            changed.append(ReportEntry(subject, names, _BUFFER_DROP_REASON))
            continue
        reason = _why_left_alone(handler)
        if reason is not None:
            left_alone.append(ReportEntry(subject, names, reason))
            continue
        safelog_class = _replacements.safelog_class_for(type(handler))
        replacement = _replacements.replacement_for(type(handler))
        assert safelog_class is not None and replacement is not None
        conversion = _Conversion(handler, type(handler))
        # Registered first, inactive until converted: a fork in between
        # finds it and leaves it be.
        _atfork.register(conversion)
        lock = handler.lock
        if lock is not None and not lock.acquire(timeout=HANDLER_LOCK_TIMEOUT):
            reason = f"busy in another thread for {HANDLER_LOCK_TIMEOUT:g} s"
            left_alone.append(ReportEntry(subject, names, reason))
            continue
        try:
            try:
                reason = conversion.convert(safelog_class, forked=forked)
            except Exception as error:
                reason = f"could not be converted: {error!r}"
        finally:
            if lock is not None:
                lock.release()
        if reason is not None:
            left_alone.append(ReportEntry(subject, names, reason))
            continue
        conversions.append(conversion)
        closed = (
            " (closed, but still on a logger, so live)" if _is_closed(handler) else ""
        )
        changed.append(
            ReportEntry(
                subject,
                names,
                f"converted in place to {replacement.safelog_path}{closed} "
                f"(hazard: {replacement.hazard})",
            )
        )
    return conversions


def _is_closed(handler: logging.Handler) -> bool:
    return bool(getattr(handler, "_closed", False))


# --- queue=True: every handler on one writer thread ----------------------------

#: Where the caller side leaves the logger a record was logged on, in the
#: copy of the record that the shared QueueHandler queues.
_ORIGIN = "_safelog_origin"
#: Set on the writer thread while it calls handlers: a record logged there (by
#: a handler) is handled at once, as without the queue, never queued again.
_delivering = threading.local()


class _Dispatcher(logging.Handler):
    """The shared QueueHandler's one target.  On the writer thread, it calls
    the handlers of the logger a record was logged on and of its ancestors,
    exactly as ``Logger.callHandlers`` does (levels, ``propagate``,
    ``logging.lastResort``), with the lists as they are at that moment."""

    def __init__(self, call_handlers: Callable[[logging.Logger, Any], None]) -> None:
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
        for logger in _loggers():
            for handler in list(logger.handlers):
                if id(handler) not in seen:
                    seen.add(id(handler))
                    with contextlib.suppress(Exception):
                        handler.flush()

    def __repr__(self) -> str:
        return "<safelog install dispatcher>"


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


@dataclasses.dataclass
class _Routing:
    """The state of ``install(queue=True)``."""

    queue_handler: logging.Handler
    stdlib_call_handlers: Callable[[logging.Logger, Any], None]
    our_call_handlers: Callable[[logging.Logger, Any], None]


_routing: _Routing | None = None


def _call_handlers_through_queue(self: logging.Logger, record: Any) -> None:
    """``Logger.callHandlers`` while ``install(queue=True)`` is in force:
    queue the record for the writer thread; take no lock."""
    routing = _routing
    if routing is None or getattr(_delivering, "active", False):
        _stdlib_call_handlers(self, record)
        return
    if record.exc_info and not record.exc_text:
        _cache_exc_text(self, record)
    record.__dict__[_ORIGIN] = self
    try:
        routing.queue_handler.handle(record)
    finally:
        record.__dict__.pop(_ORIGIN, None)


# What Logger.callHandlers was before install(queue=True) replaced it.
_stdlib_call_handlers: Callable[[logging.Logger, Any], None] = (
    logging.Logger.callHandlers
)


def _start_routing(
    changed: list[ReportEntry], left_alone: list[ReportEntry]
) -> _Routing:
    global _routing, _stdlib_call_handlers
    on_writer = "runs only on the writer thread of the shared safelog.QueueHandler"
    # Each handler keeps its one entry, converted or not.
    for entries in (changed, left_alone):
        entries[:] = [
            dataclasses.replace(entry, reason=f"{entry.reason}; {on_writer}")
            if entry.loggers
            else entry
            for entry in entries
        ]
    for logger in _loggers():
        if type(logger).callHandlers is not logging.Logger.callHandlers:
            left_alone.append(
                ReportEntry(
                    repr(logger),
                    (),
                    f"{_replacements.class_path(type(logger))} overrides "
                    "callHandlers: its handlers are called on the logging thread",
                )
            )
    stdlib_call_handlers = logging.Logger.__dict__["callHandlers"]
    _stdlib_call_handlers = stdlib_call_handlers
    dispatcher = _Dispatcher(stdlib_call_handlers)
    queue_handler: logging.Handler = QueueHandler([dispatcher])
    _routing = _Routing(
        queue_handler, stdlib_call_handlers, _call_handlers_through_queue
    )
    logging.Logger.callHandlers = _call_handlers_through_queue  # type: ignore[method-assign]
    changed.append(
        ReportEntry(
            "logging.Logger.callHandlers",
            (),
            "queues each record for one shared safelog.QueueHandler: logging "
            "threads take no handler lock, and every handler runs on its "
            "writer thread, which is quiet at fork",
        )
    )
    return _routing


def _stop_routing(routing: _Routing) -> None:
    global _routing
    routing.queue_handler.flush()  # the queued records keep their order
    if logging.Logger.__dict__.get("callHandlers") is routing.our_call_handlers:
        logging.Logger.callHandlers = routing.stdlib_call_handlers  # type: ignore[method-assign, assignment]
    _routing = None
    routing.queue_handler.close()  # writes what came in meanwhile; stops it


# --- install and uninstall -----------------------------------------------------


@dataclasses.dataclass
class _Installed:
    queue: bool
    std_streams: bool
    conversions: list[_Conversion]
    buffer_drops: list[_BufferDrop]
    original_exit: Callable[[int], NoReturn]
    our_exit: Callable[[int], NoReturn]
    original_last_resort: logging.Handler | None
    our_last_resort: logging.Handler | None
    std_streams_reset: _StdStreamsReset | None
    routing: _Routing | None


_installed: _Installed | None = None
_install_lock = threading.Lock()
# Handlers uninstall() could not give their class back (busy for
# HANDLER_LOCK_TIMEOUT): they stay safelog handlers, with their fork steps.
_still_converted: list[_Conversion] = []


def _check_flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value


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
    parent's, as safelog's handlers do in a child.  It knows
    the process was forked only when safelog was imported before the fork;
    otherwise a file handler whose stream buffer stays locked for
    ``STREAM_FLUSH_TIMEOUT`` seconds is left as it is.

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
    _check_flag("queue", queue)
    _check_flag("std_streams", std_streams)
    with _install_lock:
        if _installed is not None:
            if (_installed.queue, _installed.std_streams) != (queue, std_streams):
                raise ValueError(
                    f"safelog is already installed with queue={_installed.queue}, "
                    f"std_streams={_installed.std_streams}; call safelog.uninstall() "
                    f"before installing with queue={queue}, std_streams={std_streams}"
                )
            return InstallReport(already_installed=True)
        with _logging_lock():  # a snapshot of the lists: no waiting in here
            found = [
                (handler, tuple(_logger_name(logger) for logger in loggers))
                for handler, loggers in _handlers_by_identity().values()
            ]
        changed: list[ReportEntry] = []
        left_alone: list[ReportEntry] = []
        buffer_drops: list[_BufferDrop] = []
        conversions = _convert_handlers(found, changed, left_alone, buffer_drops)
        with _logging_lock():
            original_last_resort, our_last_resort = _replace_last_resort(
                changed, left_alone
            )
            routing = _start_routing(changed, left_alone) if queue else None
            reset: _StdStreamsReset | None = None
            if std_streams:
                reset = _StdStreamsReset()
                _atfork.register(reset)
                changed.append(
                    ReportEntry(
                        "sys.stdout, sys.stderr",
                        (),
                        "get a fresh buffer in every forked child: print() there "
                        "cannot hang on a lock a parent thread held at fork, nor "
                        "write again what the parent had buffered",
                    )
                )
            original_exit = os._exit
            our_exit = _wrap_exit(original_exit)
            os._exit = our_exit  # type: ignore[assignment]
            changed.append(
                ReportEntry(
                    "os._exit",
                    (),
                    "writes safelog's queued records first (waiting at most "
                    f"{EXIT_FLUSH_TIMEOUT:g} s), so a forked child that leaves "
                    "through it loses none",
                )
            )
            _installed = _Installed(
                queue=queue,
                std_streams=std_streams,
                conversions=conversions,
                buffer_drops=buffer_drops,
                original_exit=original_exit,
                our_exit=our_exit,
                original_last_resort=original_last_resort,
                our_last_resort=our_last_resort,
                std_streams_reset=reset,
                routing=routing,
            )
        return InstallReport(
            already_installed=False,
            changed=tuple(changed),
            left_alone=tuple(left_alone),
        )


def _replace_last_resort(
    changed: list[ReportEntry], left_alone: list[ReportEntry]
) -> tuple[logging.Handler | None, logging.Handler | None]:
    current = logging.lastResort
    if current is None or type(current) is not logging._StderrHandler:  # type: ignore[attr-defined]
        left_alone.append(
            ReportEntry(
                f"logging.lastResort = {current!r}",
                (),
                "not the standard last resort handler",
            )
        )
        return None, None
    ours = _LastResortHandler(current.level)
    logging.lastResort = ours
    changed.append(
        ReportEntry(
            "logging.lastResort",
            (),
            "replaced by a safelog handler that writes to sys.stderr, and in a "
            "forked child straight to its descriptor",
        )
    )
    return current, ours


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
            _stop_routing(installed.routing)
        with _logging_lock():
            _installed = None
            _restore_globals(installed)
        # Outside logging's module lock, as install() converts them.
        for conversion in reversed(installed.conversions):
            _restore_handler(conversion)
        return True


def _restore_globals(installed: _Installed) -> None:
    """Put back what install() changed besides the handlers (logging's
    module lock held)."""
    if os._exit is installed.our_exit:
        os._exit = installed.original_exit  # type: ignore[assignment]
    if installed.std_streams_reset is not None:
        installed.std_streams_reset.active = False
    for drop in installed.buffer_drops:
        drop.active = False
    if logging.lastResort is installed.our_last_resort:
        logging.lastResort = installed.original_last_resort
    if installed.our_last_resort is not None:
        installed.our_last_resort.close()


def _restore_handler(conversion: _Conversion) -> None:
    lock = conversion.handler.lock
    if lock is not None and not lock.acquire(timeout=HANDLER_LOCK_TIMEOUT):
        _still_converted.append(conversion)
        return
    try:
        conversion.restore()
    finally:
        if lock is not None:
            lock.release()
