"""The loggers and handlers of the running logging configuration, as
``safelog.install()`` reads them.

A read is a snapshot of lists that other threads may change at any moment
(``addHandler``, ``getLogger``, ``dictConfig``); a caller that needs one
consistent view holds :func:`logging_lock` while it reads.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

__all__ = ["all_loggers", "handlers_with_loggers", "logging_lock"]


@contextlib.contextmanager
def logging_lock() -> Iterator[None]:
    """logging's module lock, which ``addHandler``, ``removeHandler``,
    ``getLogger`` and ``dictConfig`` take while they change the loggers."""
    # Looked up each time: a forked child gets a new one (3.9 to 3.13 have
    # it; without one there is nothing to hold).
    lock = getattr(logging, "_lock", None)
    if lock is None:
        yield
        return
    with lock:
        yield


def all_loggers() -> list[logging.Logger]:
    """The root logger, then every logger the manager holds (not its
    placeholders)."""
    loggers: list[logging.Logger] = [logging.root]
    for logger in list(logging.root.manager.loggerDict.values()):
        if isinstance(logger, logging.Logger):
            loggers.append(logger)
    return loggers


def handlers_with_loggers() -> list[tuple[logging.Handler, tuple[str, ...]]]:
    """Every handler on a logger, once, with the names of the loggers that
    hold it ("root" for the root logger), in the order they were first
    met."""
    found: dict[int, tuple[logging.Handler, list[logging.Logger]]] = {}
    for logger in all_loggers():
        for handler in logger.handlers:
            _, loggers = found.setdefault(id(handler), (handler, []))
            if logger not in loggers:
                loggers.append(logger)
    return [
        (handler, tuple(_name(logger) for logger in loggers))
        for handler, loggers in found.values()
    ]


def _name(logger: logging.Logger) -> str:
    return "root" if logger is logging.root else logger.name
