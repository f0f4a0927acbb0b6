"""Making the handlers of a running configuration fork-safe without replacing
them: the same objects stay in every logger's list, in ``logging._handlers``
and in every variable that holds them.

``install()`` does one of three things with each handler on a logger:

* *converts* it, when its class is exactly a standard class that safelog
  replaces: under its own lock, the handler's ``__class__`` becomes the
  safelog class, and it gets the attributes that class's ``__init__`` would
  have set (the class's ``_safelog_state``); ``uninstall()`` gives the class
  back;
* keeps the class of a standard ``MemoryHandler`` or ``BufferingHandler``,
  for which safelog has none, and empties its buffer in a forked child
  (:class:`BufferDrop`);
* leaves anything else alone, and says why.

A converted handler is not registered with the at-fork registry itself
(which holds participants until they are garbage collected, and after
``uninstall()`` the handler is a standard one again, with no fork steps): a
:class:`Conversion` registered in its place passes the steps on while the
handler is converted.
"""

from __future__ import annotations

import contextlib
import io
import logging
import logging.handlers
import threading
import time
from collections.abc import Iterator
from typing import Any

from . import _atfork, _replacements
from ._handlers import ForkSafeHandler, set_append
from ._report import ReportDraft
from ._stream import DescriptorStream

__all__ = [
    "CONVERTIBLE",
    "HANDLER_LOCK_TIMEOUT",
    "STREAM_FLUSH_TIMEOUT",
    "BufferDrop",
    "Conversion",
    "make_fork_safe_in_place",
]

#: How long install() and uninstall() wait for a handler that is busy in
#: another thread before they leave it as it is (holding none of logging's
#: locks meanwhile).
HANDLER_LOCK_TIMEOUT = 5.0

#: How long install() lets a file handler's stream flush before it leaves
#: the handler as it is: longer means another thread holds the stream's
#: buffer lock, for ever in a child forked while a parent thread held it.
STREAM_FLUSH_TIMEOUT = 1.0

#: The standard classes whose handlers become the safelog class in place.
CONVERTIBLE = frozenset(
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

#: Standard classes that buffer records: safelog has no class for them, but a
#: forked child can start with an empty buffer (the records buffered at fork
#: are the parent's to write).
_BUFFERING = frozenset(
    {"logging.handlers.MemoryHandler", "logging.handlers.BufferingHandler"}
)

_BUFFER_DROP_REASON = (
    "class kept (safelog has none for it); made fork-safe in place: a fork "
    "waits until no thread is inside it, and the child starts with an empty "
    "buffer, so the records buffered at fork are written once, by the parent "
    "(its target is converted only if it is on a logger too)"
)


# --- each handler ----------------------------------------------------------------


def make_fork_safe_in_place(
    found: list[tuple[logging.Handler, tuple[str, ...]]],
    draft: ReportDraft,
    *,
    forked: bool,
) -> tuple[list[Conversion], list[BufferDrop]]:
    """Convert, or drop the buffer in children of, each handler in ``found``
    (with the names of the loggers that hold it); report each once.

    Called without logging's module lock: a busy handler is waited for (at
    most ``HANDLER_LOCK_TIMEOUT`` seconds) while other threads create
    loggers and fork.  ``forked``: this process was forked while other
    threads ran, and runs no thread of its own yet, so the handlers'
    streams and sockets are the parent's."""
    conversions: list[Conversion] = []
    buffer_drops: list[BufferDrop] = []
    for handler, loggers in found:
        done = _make_fork_safe(handler, loggers, draft, forked=forked)
        if isinstance(done, Conversion):
            conversions.append(done)
        elif isinstance(done, BufferDrop):
            buffer_drops.append(done)
    return conversions, buffer_drops


def _make_fork_safe(
    handler: logging.Handler,
    loggers: tuple[str, ...],
    draft: ReportDraft,
    *,
    forked: bool,
) -> Conversion | BufferDrop | None:
    subject = repr(handler)
    if _replacements.class_path(type(handler)) in _BUFFERING:
        drop = BufferDrop(handler)
        _atfork.register(drop)
        draft.changed(subject, loggers, _BUFFER_DROP_REASON)
        return drop
    reason = _why_left_alone(handler)
    if reason is not None:
        draft.left_alone(subject, loggers, reason)
        return None
    conversion = Conversion(handler)
    reason = conversion.convert_under_lock(forked=forked)
    if reason is not None:
        draft.left_alone(subject, loggers, reason)
        return None
    replacement = _replacements.replacement_for(conversion.original_class)
    assert replacement is not None
    closed = getattr(handler, "_closed", False)  # Handler._closed: 3.10+
    live = " (closed, but still on a logger, so live)" if closed else ""
    draft.changed(
        subject,
        loggers,
        f"converted in place to {replacement.safelog_path}{live} "
        f"(hazard: {replacement.hazard})",
    )
    return conversion


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
    if _replacements.class_path(cls) not in CONVERTIBLE:
        return (
            f"{replacement.safelog_path} works differently (it writes through "
            "target handlers, not a queue), so it cannot take this one's place; "
            f"hazard: {replacement.hazard}"
        )
    if _replacements.safelog_class_for(cls) is None:
        return f"{replacement.safelog_path} is not in this version of safelog"
    return None


# --- converting a handler -----------------------------------------------------------


class _NotConverted(Exception):
    """Why a handler stays as it is; raised before anything of it changed."""


class Conversion:
    """One handler converted in place: its original class and mode, and its
    part in the fork steps while it is converted (``active``)."""

    def __init__(self, handler: logging.Handler) -> None:
        self.handler = handler
        self.original_class = type(handler)
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

    def convert_under_lock(self, *, forked: bool) -> str | None:
        """Convert the handler with its lock held, so that no record is half
        written by the standard code; return why not, or None.  A thread that
        calls ``handle()`` afterwards, or is waiting for the lock inside the
        standard ``handle()``, runs the safelog class's ``emit``."""
        # Registered first, inactive until converted: a fork in between
        # finds it and leaves it be.
        _atfork.register(self)
        lock = self.handler.lock
        if lock is not None and not lock.acquire(timeout=HANDLER_LOCK_TIMEOUT):
            return f"busy in another thread for {HANDLER_LOCK_TIMEOUT:g} s"
        try:
            self._convert(forked=forked)
        except _NotConverted as why:
            return str(why)
        except Exception as error:
            return f"could not be converted: {error!r}"
        finally:
            if lock is not None:
                lock.release()
        return None

    def _convert(self, *, forked: bool) -> None:
        """``forked``: see :func:`make_fork_safe_in_place`."""
        handler: Any = self.handler
        safelog_class = _replacements.safelog_class_for(self.original_class)
        assert safelog_class is not None
        assert issubclass(safelog_class, ForkSafeHandler)
        # Built first: a failure leaves the handler as it was.
        state = safelog_class._safelog_state(handler)
        # In a forked child the stream's buffer may be the parent's, locked
        # for ever: the child step below replaces the stream instead.
        stream = _descriptor_stream(handler) if not forked else None
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

    def restore_under_lock(self) -> bool:
        """Give the handler its standard class back, with its lock held;
        False if another thread kept it busy for ``HANDLER_LOCK_TIMEOUT``
        seconds (it stays converted, with its fork steps).

        It keeps the stream it has now (a :class:`DescriptorStream` for a
        file: the standard class writes through it as through any text
        file), and safelog's attributes, unused by the standard class: a
        thread that entered safelog's ``handle()`` just before still reads
        them once it has the lock."""
        handler: Any = self.handler
        lock = handler.lock
        if lock is not None and not lock.acquire(timeout=HANDLER_LOCK_TIMEOUT):
            return False
        try:
            with _atfork_registry_lock():
                self.active = False
                file_lock = vars(handler).get("_file_lock")
                if file_lock is not None:
                    with contextlib.suppress(OSError):
                        file_lock.close()
                if self.original_mode is not None:
                    handler.mode = self.original_mode
                handler.__class__ = self.original_class
        finally:
            if lock is not None:
                lock.release()
        return True


@contextlib.contextmanager
def _atfork_registry_lock() -> Iterator[None]:
    # Looked up each time: a forked child gets a new one.
    with _atfork._registry_lock:
        yield


def _append_mode(mode: str) -> str:
    # The file is open already: "w" truncated it once, and must not again.
    return mode.replace("w", "a").replace("x", "a")


def _descriptor_stream(handler: Any) -> DescriptorStream | None:
    """For a file handler whose open stream is a text file from ``open()``:
    a :class:`DescriptorStream` on the same descriptor, set to append (as
    ``safelog.FileHandler`` opens its files), after the text file's pending
    bytes are flushed.  None for any other handler."""
    stream = getattr(handler, "stream", None)
    if not (
        isinstance(handler, logging.FileHandler)
        and type(stream) is io.TextIOWrapper
        and type(stream.buffer) is io.BufferedWriter
        and type(stream.buffer.raw) is io.FileIO
    ):
        return None
    try:
        flushed = _flush_within(stream, STREAM_FLUSH_TIMEOUT)
    except Exception as error:  # its pending bytes stay with it
        raise _NotConverted(f"could not be flushed: {error!r}") from error
    if not flushed:
        raise _NotConverted(
            f"its stream's buffer was busy for {STREAM_FLUSH_TIMEOUT:g} s "
            "(in a process forked while another thread wrote to it, "
            "import safelog before the fork)"
        )
    taken_over = DescriptorStream.from_text_file(stream, _append_mode(handler.mode))
    set_append(taken_over.fileno())
    return taken_over


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


# --- a buffering handler, whose class stays ------------------------------------------


class BufferDrop:
    """At-fork participant for a standard ``MemoryHandler`` or
    ``BufferingHandler``, whose class stays as it is: the fork waits (within
    the fork timeout) until no thread is inside it, and the child starts
    with an empty buffer, so the records buffered at fork are written once,
    by the parent."""

    def __init__(self, handler: logging.Handler) -> None:
        self.handler = handler
        self.active = True
        self._locked = False

    def restore(self) -> None:
        # The registry drops it once nothing references it; until then it
        # must do nothing.
        self.active = False

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
