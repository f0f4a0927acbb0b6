"""Which standard handler each safelog handler replaces, and why it must.

One table for everything that converts a configuration: ``safelog.install()``
and ``python -m safelog doctor``.
"""

from __future__ import annotations

import dataclasses
import logging

from ._handlers import FileHandler, StreamHandler
from ._network import DatagramHandler, SocketHandler, SysLogHandler
from ._queue import QueueHandler
from ._rfc5424 import RFC5424Handler
from ._rotating import RotatingFileHandler, TimedRotatingFileHandler
from ._watched import WatchedFileHandler


@dataclasses.dataclass(frozen=True)
class Replacement:
    """A standard handler class, its safelog replacement, and the hazard the
    standard class has across ``fork()``."""

    stdlib_path: str
    safelog_name: str
    hazard: str

    @property
    def safelog_path(self) -> str:
        return f"safelog.{self.safelog_name}"


_BUFFER_HAZARD = (
    "a child forked while another thread writes to the stream can hang on the "
    "stream's buffer lock, and bytes pending in that buffer at fork are "
    "written by both processes"
)

REPLACEMENTS: tuple[Replacement, ...] = (
    Replacement("logging.StreamHandler", "StreamHandler", _BUFFER_HAZARD),
    Replacement("logging.FileHandler", "FileHandler", _BUFFER_HAZARD),
    Replacement(
        "logging.handlers.WatchedFileHandler", "WatchedFileHandler", _BUFFER_HAZARD
    ),
    Replacement(
        "logging.handlers.RotatingFileHandler",
        "RotatingFileHandler",
        _BUFFER_HAZARD + "; processes that share the file roll it over "
        "independently, losing and duplicating records",
    ),
    Replacement(
        "logging.handlers.TimedRotatingFileHandler",
        "TimedRotatingFileHandler",
        _BUFFER_HAZARD + "; processes that share the file roll it over "
        "independently, losing and duplicating records",
    ),
    Replacement(
        "logging.handlers.SocketHandler",
        "SocketHandler",
        "a forked child writes on the parent's connection, so records from "
        "both processes interleave and corrupt the stream",
    ),
    Replacement(
        "logging.handlers.DatagramHandler",
        "DatagramHandler",
        "a forked child shares the parent's socket",
    ),
    Replacement(
        "logging.handlers.SysLogHandler",
        "SysLogHandler",
        "a forked child writes on the parent's connection, so records from "
        "both processes interleave and corrupt the stream",
    ),
    Replacement(
        "logging.handlers.QueueHandler",
        "QueueHandler",
        "records logged in a forked child are never written, because the "
        "listener thread does not exist there",
    ),
)

#: Every handler class safelog exports, by its name in the package.
SAFELOG_HANDLERS: dict[str, type[logging.Handler]] = {
    cls.__name__: cls
    for cls in (
        DatagramHandler,
        FileHandler,
        QueueHandler,
        RFC5424Handler,
        RotatingFileHandler,
        SocketHandler,
        StreamHandler,
        SysLogHandler,
        TimedRotatingFileHandler,
        WatchedFileHandler,
    )
}

_BY_STDLIB_PATH = {replacement.stdlib_path: replacement for replacement in REPLACEMENTS}


def class_path(cls: type) -> str:
    """``module.QualName`` of ``cls``, e.g. ``logging.handlers.SysLogHandler``."""
    return f"{cls.__module__}.{cls.__qualname__}"


def replacement_for(cls: type) -> Replacement | None:
    """The replacement for exactly ``cls`` (not its subclasses, whose
    behaviour safelog cannot know), or None."""
    return _BY_STDLIB_PATH.get(class_path(cls))


def safelog_class_for(cls: type) -> type[logging.Handler] | None:
    """The safelog class that replaces exactly ``cls``, or None."""
    replacement = replacement_for(cls)
    if replacement is None:
        return None
    return SAFELOG_HANDLERS.get(replacement.safelog_name)
