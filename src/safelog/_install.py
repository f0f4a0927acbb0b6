"""``safelog.install()``: make a logging configuration fork-safe, in place.

Everything safelog does to global state lives here, and ``uninstall()`` undoes
it.  ``install()``:

* replaces each handler on the root logger and on every logger in the manager
  whose class is exactly a standard class that safelog replaces, with the
  safelog handler built from the same settings, at the same place in every
  logger's list (a shared handler stays one shared handler);
* replaces ``logging.lastResort``;
* with ``queue=True``, routes every logger's handlers through one shared
  ``safelog.QueueHandler``, so only its writer thread ever runs a handler;
* wraps ``os._exit`` so that records still queued are written first;
* with ``std_streams=True``, gives ``sys.stdout`` and ``sys.stderr`` fresh
  buffers in every forked child (see :class:`_StdStreamsReset`).

The old handlers are never closed: ``uninstall()`` puts the very same objects
back.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import logging.handlers
import os
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any, NoReturn, TextIO, cast

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

import safelog

from . import _atfork, _replacements
from ._handlers import StreamHandler, _stream_for_child
from ._inherited import reset_text_stream

__all__ = ["EXIT_FLUSH_TIMEOUT", "InstallReport", "ReportEntry", "install", "uninstall"]

EXIT_FLUSH_TIMEOUT = 1.0
"""Seconds the wrapped ``os._exit`` waits for queued records to be written."""

#: How long install() waits for a handler that is busy in another thread
#: before it leaves that handler alone (it holds logging's module lock then,
#: and a handler that takes that lock inside emit() would otherwise deadlock).
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
            lines = [
                f"safelog installed: {len(self.changed)} changed, "
                f"{len(self.left_alone)} left alone."
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
    flush = getattr(safelog, "flush", None)  # the queue module may be absent
    if not callable(flush):
        return
    try:
        barrier = threading.Thread(target=flush, name="safelog-exit-flush", daemon=True)
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
    """safelog's ``logging.lastResort``: like the standard one, it writes to
    whatever ``sys.stderr`` is at the time of each record; in a forked child,
    while ``sys.stderr`` is still the object inherited from the parent, it
    writes straight to that object's descriptor instead, never through its
    buffer."""

    def __init__(self, level: int) -> None:
        self._inherited_stderr: object = None
        self._child_stream: TextIO | None = None
        super().__init__(None)
        self._child_stream = None  # logging.StreamHandler set sys.stderr
        self.setLevel(level)

    @property
    def stream(self) -> TextIO:
        current = sys.stderr
        if self._child_stream is not None and current is self._inherited_stderr:
            return self._child_stream
        return current

    @stream.setter
    def stream(self, value: TextIO) -> None:
        self._child_stream = value

    def _start_afresh_in_child(self) -> None:
        self._inherited_stderr = sys.stderr
        self._child_stream = cast("TextIO | None", _stream_for_child(sys.stderr))


# --- rebuilding a handler as its safelog replacement ----------------------------


def _append_mode(mode: str) -> str:
    # The file is open already: "w" truncated it once, and must not again.
    return mode.replace("w", "a").replace("x", "a")


def _file_arguments(old: Any) -> dict[str, Any]:
    opened = old.stream is not None
    return {
        "filename": old.baseFilename,
        "mode": _append_mode(old.mode) if opened else old.mode,
        "encoding": old.encoding,
        "delay": not opened,
        "errors": getattr(old, "errors", None),
    }


_SECONDS_PER_WHEN = {"S": 1, "M": 60, "H": 3600, "D": 86400, "MIDNIGHT": 86400}


def _timed_rotating_arguments(old: Any) -> dict[str, Any]:
    when: str = old.when
    # The standard handler keeps interval in seconds; its argument is in
    # units of `when`.
    unit = 7 * 86400 if when.startswith("W") else _SECONDS_PER_WHEN[when]
    arguments = _file_arguments(old)
    del arguments["mode"]  # always "a"
    return {
        **arguments,
        "when": when,
        "interval": old.interval // unit,
        "backupCount": old.backupCount,
        "utc": old.utc,
        "atTime": old.atTime,
    }


_ARGUMENTS: dict[str, Callable[[Any], dict[str, Any]]] = {
    "logging.StreamHandler": lambda old: {"stream": old.stream},
    "logging.FileHandler": _file_arguments,
    "logging.handlers.WatchedFileHandler": _file_arguments,
    "logging.handlers.RotatingFileHandler": lambda old: {
        **_file_arguments(old),
        "maxBytes": old.maxBytes,
        "backupCount": old.backupCount,
    },
    "logging.handlers.TimedRotatingFileHandler": _timed_rotating_arguments,
    "logging.handlers.SocketHandler": lambda old: {"host": old.host, "port": old.port},
    "logging.handlers.DatagramHandler": lambda old: {
        "host": old.host,
        "port": old.port,
    },
    "logging.handlers.SysLogHandler": lambda old: {
        "address": old.address,
        "facility": old.facility,
        "socktype": old.socktype,
    },
}

#: Settings kept on the instance, copied when the old handler has them there.
_INSTANCE_SETTINGS = (
    "terminator",
    "closeOnError",
    "retryStart",
    "retryMax",
    "retryFactor",
    "ident",
    "append_nul",
    "suffix",
    "extMatch",
    "namer",
    "rotator",
    "rolloverAt",  # the schedule the old handler kept, not one from now
)


def _rebuild(
    old: logging.Handler, safelog_class: type[logging.Handler]
) -> logging.Handler:
    """A ``safelog_class`` handler with ``old``'s settings; raises if it
    cannot be built (a file that cannot be opened again, say)."""
    arguments = _ARGUMENTS[_replacements.class_path(type(old))](old)
    new = safelog_class(**arguments)
    try:
        new.setLevel(old.level)
        new.setFormatter(old.formatter)
        new.filters = list(old.filters)
        for setting in _INSTANCE_SETTINGS:
            if setting in vars(old):
                setattr(new, setting, vars(old)[setting])
    except BaseException:
        new.close()
        raise
    return new


def _set_append(stream: object) -> None:
    """Give the descriptor under ``stream`` O_APPEND, so that its next write
    lands at the end of the file, after what the replacement wrote there."""
    if fcntl is None:
        return
    try:
        fd = stream.fileno()  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):
        return
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    if not flags & os.O_APPEND:
        fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_APPEND)


def _reopen_if_moved(handler: Any) -> None:
    """Reopen a file handler's stream (appending) if its path no longer names
    the file it has open: the replacement rotated it away."""
    stream = getattr(handler, "stream", None)
    if stream is None or not hasattr(handler, "baseFilename"):
        return
    try:
        opened = os.fstat(stream.fileno())
        current = os.stat(handler.baseFilename)
    except (AttributeError, OSError, ValueError):
        pass  # gone, or never a file: open it anew
    else:
        if (opened.st_dev, opened.st_ino) == (current.st_dev, current.st_ino):
            return
    with contextlib.suppress(OSError, ValueError):
        stream.close()
    handler.stream = open(  # noqa: SIM115 - the handler owns and closes it
        handler.baseFilename,
        _append_mode(handler.mode),
        encoding=handler.encoding,
        errors=getattr(handler, "errors", None),
    )


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


def _replace_everywhere(
    old: logging.Handler, new: logging.Handler, loggers: list[logging.Logger]
) -> None:
    # Assigning one element of a list is atomic: a thread iterating the list
    # in Logger.callHandlers sees the old handler or the new one, never none.
    for logger in loggers:
        handlers = logger.handlers
        for index, handler in enumerate(handlers):
            if handler is old:
                handlers[index] = new


def _why_left_alone(handler: logging.Handler) -> str | None:
    """Why ``handler`` is not replaced, or None if it can be."""
    cls = type(handler)
    if cls.__module__ == "safelog" or cls.__module__.startswith("safelog."):
        return "already a safelog handler"
    replacement = _replacements.replacement_for(cls)
    if replacement is None:
        for base in cls.__mro__[1:]:
            if _replacements.replacement_for(base) is not None:
                return (
                    f"a subclass of {_replacements.class_path(base)}: safelog cannot "
                    "know what it overrides, so it does not replace it"
                )
        return "no safelog replacement for this class"
    if _replacements.class_path(cls) not in _ARGUMENTS:
        return (
            f"{replacement.safelog_path} works differently (it writes through "
            "target handlers, not a queue), so it cannot take this one's place; "
            f"hazard: {replacement.hazard}"
        )
    if _replacements.safelog_class_for(cls) is None:
        return f"{replacement.safelog_path} is not in this version of safelog"
    if getattr(handler, "_closed", False):
        return "closed"
    return None


@dataclasses.dataclass
class _Swap:
    """One handler replaced: the old object comes back on uninstall()."""

    old: logging.Handler
    new: logging.Handler
    loggers: list[logging.Logger]
    report_index: int  # of its entry in `changed`


def _replace_handlers(
    changed: list[ReportEntry], left_alone: list[ReportEntry]
) -> list[_Swap]:
    swaps: list[_Swap] = []
    for old, loggers in _handlers_by_identity().values():
        names = tuple(_logger_name(logger) for logger in loggers)
        reason = _why_left_alone(old)
        if reason is not None:
            left_alone.append(ReportEntry(repr(old), names, reason))
            continue
        safelog_class = _replacements.safelog_class_for(type(old))
        replacement = _replacements.replacement_for(type(old))
        assert safelog_class is not None and replacement is not None
        try:
            new = _rebuild(old, safelog_class)
        except Exception as error:
            left_alone.append(
                ReportEntry(repr(old), names, f"could not be rebuilt: {error!r}")
            )
            continue
        reason = _swap_in(old, new, loggers)
        if reason is not None:
            new.close()
            left_alone.append(ReportEntry(repr(old), names, reason))
            continue
        swaps.append(_Swap(old, new, loggers, len(changed)))
        changed.append(
            ReportEntry(
                repr(old),
                names,
                f"replaced by {replacement.safelog_path} "
                f"(hazard: {replacement.hazard})",
            )
        )
    return swaps


def _swap_in(
    old: logging.Handler, new: logging.Handler, loggers: list[logging.Logger]
) -> str | None:
    """Put ``new`` in ``old``'s places, or return why not.  Under ``old``'s
    lock, so that no record is half written by it, and after flushing it, so
    that its last bytes reach the file before ``new`` writes any."""
    lock = old.lock
    if lock is not None and not lock.acquire(timeout=HANDLER_LOCK_TIMEOUT):
        return f"busy in another thread for {HANDLER_LOCK_TIMEOUT:g} s"
    try:
        try:
            old.flush()
        except Exception as error:  # its pending bytes stay with it
            return f"could not be flushed: {error!r}"
        # A thread that fetched `old` from a list just before the swap may
        # still write through it: at the end of the file, never over `new`'s
        # records.
        if hasattr(old, "baseFilename"):
            _set_append(getattr(old, "stream", None))
        _replace_everywhere(old, new, loggers)
        if old.name:
            new.set_name(old.name)  # logging._handlers now finds `new`
    finally:
        if lock is not None:
            lock.release()
    return None


def _swap_out(swap: _Swap) -> None:
    """Put ``swap.old`` back wherever ``swap.new`` still is, and close
    ``swap.new``."""
    new, old = swap.new, swap.old
    lock = new.lock
    if lock is not None:
        lock.acquire()
    try:
        new.flush()
        for setting in ("rolloverAt",):  # the replacement rolled the file over
            if hasattr(new, setting) and hasattr(old, setting):
                setattr(old, setting, getattr(new, setting))
        with contextlib.suppress(OSError, ValueError):
            _reopen_if_moved(old)
        _replace_everywhere(new, old, _loggers())
    finally:
        if lock is not None:
            lock.release()
    new.close()  # drops new's name from logging._handlers, so set old's after
    if old.name:
        old.set_name(old.name)


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


def _render_exception(logger: logging.Logger, record: logging.LogRecord) -> None:
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
        _render_exception(self, record)
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
    swaps: list[_Swap], changed: list[ReportEntry], left_alone: list[ReportEntry]
) -> _Routing:
    global _routing, _stdlib_call_handlers
    queue_class = getattr(safelog, "QueueHandler")  # noqa: B009 - checked by install
    on_writer = "runs only on the writer thread of the shared safelog.QueueHandler"
    replaced = {id(swap.new): swap.report_index for swap in swaps}
    for handler, loggers in _handlers_by_identity().values():
        index = replaced.get(id(handler))
        if index is None:
            names = tuple(_logger_name(logger) for logger in loggers)
            changed.append(ReportEntry(repr(handler), names, on_writer))
        else:
            entry = changed[index]
            changed[index] = dataclasses.replace(
                entry, reason=f"{entry.reason}; {on_writer}"
            )
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
    queue_handler: logging.Handler = queue_class([dispatcher])
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
    swaps: list[_Swap]
    original_exit: Callable[[int], NoReturn]
    our_exit: Callable[[int], NoReturn]
    original_last_resort: logging.Handler | None
    our_last_resort: logging.Handler | None
    std_streams_reset: _StdStreamsReset | None
    routing: _Routing | None


_installed: _Installed | None = None
_install_lock = threading.Lock()


def _check_flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value


def install(*, queue: bool = False, std_streams: bool = True) -> InstallReport:
    """Make the current logging configuration fork-safe, in place.

    Call it once, after logging is configured.  Each handler on a logger whose
    class is exactly a standard class that safelog replaces is replaced, at
    the same place in every logger's list, by the safelog handler with the
    same name, level, formatter, filters and stream or file; other threads may
    log meanwhile, and no record is lost or written twice.  ``logging.lastResort``
    is replaced too, and ``os._exit`` first writes safelog's queued records
    (waiting at most ``EXIT_FLUSH_TIMEOUT`` seconds).

    ``queue=True`` also routes every logger's handlers through one shared
    ``safelog.QueueHandler``: logging threads never take a handler lock, and
    every handler, third-party ones included, runs only on its writer thread,
    which is quiet at fork.

    ``std_streams=True`` (the default) gives ``sys.stdout`` and ``sys.stderr``
    a fresh buffer in every forked child, so that ``print()`` there never
    hangs on a lock a parent thread held at fork, and never writes again the
    bytes the parent had buffered (which the parent writes).

    Returns a report of what changed and what was left alone, and why.  A
    second call with the same options changes nothing and returns a report
    whose ``already_installed`` is True; with other options, it raises
    ``ValueError`` (call :func:`uninstall` first).  Handlers added after this
    call are not replaced.
    """
    global _installed
    _check_flag("queue", queue)
    _check_flag("std_streams", std_streams)
    if queue and not isinstance(getattr(safelog, "QueueHandler", None), type):
        raise ValueError(
            "queue=True needs safelog.QueueHandler, absent in this version"
        )
    with _install_lock, _logging_lock():
        if _installed is not None:
            if (_installed.queue, _installed.std_streams) != (queue, std_streams):
                raise ValueError(
                    f"safelog is already installed with queue={_installed.queue}, "
                    f"std_streams={_installed.std_streams}; call safelog.uninstall() "
                    f"before installing with queue={queue}, std_streams={std_streams}"
                )
            return InstallReport(already_installed=True)
        changed: list[ReportEntry] = []
        left_alone: list[ReportEntry] = []
        swaps = _replace_handlers(changed, left_alone)
        original_last_resort, our_last_resort = _replace_last_resort(
            changed, left_alone
        )
        routing = _start_routing(swaps, changed, left_alone) if queue else None
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
                f"{EXIT_FLUSH_TIMEOUT:g} s), so a forked child that leaves through "
                "it loses none",
            )
        )
        _installed = _Installed(
            queue=queue,
            std_streams=std_streams,
            swaps=swaps,
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
    """Undo :func:`install`: put back the very handler objects it replaced,
    ``logging.lastResort`` and ``os._exit``, and stop resetting the std
    streams at fork.  Returns False if safelog was not installed.

    A handler is put back wherever its replacement still is; a logger whose
    handlers were reconfigured since keeps its new ones.  The old file
    handlers continue at the end of their files (reopened if the replacement
    rotated the file away).
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
            _restore(installed)
        return True


def _restore(installed: _Installed) -> None:
    """Put back what install() changed (logging's module lock held)."""
    if os._exit is installed.our_exit:
        os._exit = installed.original_exit  # type: ignore[assignment]
    if installed.std_streams_reset is not None:
        installed.std_streams_reset.active = False
    if logging.lastResort is installed.our_last_resort:
        logging.lastResort = installed.original_last_resort
    if installed.our_last_resort is not None:
        installed.our_last_resort.close()
    for swap in reversed(installed.swaps):
        _swap_out(swap)
