"""A fork-safe drop-in replacement for ``logging.handlers.WatchedFileHandler``."""

from __future__ import annotations

import logging.handlers
from typing import Any

from ._handlers import FileHandler, text_encoding

__all__ = ["WatchedFileHandler"]


class WatchedFileHandler(FileHandler, logging.handlers.WatchedFileHandler):
    """``logging.handlers.WatchedFileHandler`` with safelog's fork guarantees.

    Before each record it checks the device and inode at the path, as the
    standard handler does, and reopens when the file was moved or deleted
    (logrotate, newsyslog).  It writes like ``safelog.FileHandler``: each
    record in one ``os.write`` on an ``O_APPEND`` descriptor, with no buffer,
    so a child forked at any instant can log at once, never writes a parent's
    record again, and processes sharing the file never tear each other's
    records.  Each process reopens on its own next record; a record written
    between the move and that check goes to the moved file, whole (as with
    the standard handler), so rotate with ``delaycompress`` or ``create``
    rather than compressing at once.  A reopen appends whatever the mode
    (``"w"`` truncates at the first open only, unlike the standard
    handler), so processes sharing the file never truncate the records
    another one wrote to the new file.
    """

    # Whether this handler opened its file before: a truncating mode applies
    # to the first open only.
    _opened_before = False

    def __init__(
        self,
        filename: Any,
        mode: str = "a",
        encoding: str | None = None,
        delay: bool = False,
        errors: str | None = None,
    ) -> None:
        encoding = text_encoding(encoding, mode)
        logging.handlers.WatchedFileHandler.__init__(
            self, filename, mode, encoding, delay, errors
        )
        self._register_for_fork()

    @classmethod
    def _safelog_state(cls, handler: Any) -> dict[str, Any]:
        state = super()._safelog_state(handler)
        state["_opened_before"] = handler.stream is not None
        return state

    def _open(self) -> Any:
        mode = self.mode
        if self._opened_before:
            mode = mode.replace("w", "a", 1)
        stream = self._open_as(mode)
        self._opened_before = True
        return stream
