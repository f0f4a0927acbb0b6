"""Handing queued records to target handlers, each target on its own.

What one target does with a record (filter, format, write) and whatever it
raises cannot cost another target that record: a failure goes to the failing
target's ``handleError``, for the record it concerns.  A record's exception
is rendered on the caller's side with each target's own formatter
(:func:`render_exception`), and each target gets its own rendering.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from typing import Protocol, Union

from ._handlers import takes_batches, write_batch

__all__ = ["Batch", "Renderings", "flush_targets", "note_record", "render_exception"]

# How each target's formatter rendered a record's exception: the text, or
# what formatException raised.
Renderings = list[tuple[logging.Formatter, Union[str, Exception]]]

_DEFAULT_FORMATTER = logging.Formatter()


def render_exception(
    record: logging.LogRecord, targets: Sequence[logging.Handler]
) -> Renderings:
    """The exception of ``record`` as the formatter of each target whose
    level it meets renders it now (the exception and its traceback may
    change later); once per formatter."""
    assert record.exc_info is not None
    renderings: Renderings = []
    for target in targets:
        if record.levelno < target.level:
            continue
        formatter = target.formatter or _DEFAULT_FORMATTER
        if any(known is formatter for known, _ in renderings):
            continue
        rendered: str | Exception
        try:
            rendered = formatter.formatException(record.exc_info)
        except RecursionError:  # as logging.Handler.emit: never swallowed
            raise
        except Exception as error:
            rendered = error
        renderings.append((formatter, rendered))
    return renderings


class Progress(Protocol):
    """What tells a batch to stop half way."""

    stop_requested: bool  # the writer is asked to stop after its record
    forked_away: bool  # this process is a child of the one that took it


class Batch:
    """Records taken off a queue together, the targets they go to, and how
    many of them each target has been handed so far."""

    __slots__ = ("handed", "records", "renderings", "targets")

    def __init__(
        self,
        records: list[logging.LogRecord],
        renderings: list[Renderings | None],
        targets: tuple[logging.Handler, ...],
    ) -> None:
        self.records = records
        self.renderings = renderings
        self.targets = targets
        self.handed = [0] * len(targets)

    def hand_out(
        self, progress: Progress, reported: type[BaseException], *, stoppable: bool
    ) -> bool:
        """Hand each target the records it has not had yet; return whether
        all have been handed.  What a target raises that is a ``reported``
        goes to its ``handleError``; anything else propagates (a caller's
        own ``KeyboardInterrupt``).  Stops, returning False, when
        ``stoppable`` and ``progress.stop_requested``, or when this process
        turns out to be a forked child of the one that took the batch (a
        target forked): the rest is the parent's.

        Re-entered by a target that flushes or closes the queue handler on
        the consuming thread: the batch is finished there, and the outer
        call finds nothing left, since ``handed`` moves before a target runs
        any code."""
        records, handed = self.records, self.handed
        count = len(records)
        for index, target in enumerate(self.targets):
            while handed[index] < count:
                if progress.forked_away or (stoppable and progress.stop_requested):
                    return False
                start = handed[index]
                if takes_batches(target):
                    handed[index] = count
                    eligible = self._prepared(target, start, count, reported)
                    if not eligible or write_batch(target, eligible, reported):
                        continue
                    handed[index] = start  # it took none after all
                handed[index] = start + 1
                record = records[start]
                if self._prepared(target, start, start + 1, reported):
                    try:
                        target.handle(record)
                    except reported:
                        if progress.forked_away:
                            return False
                        report_target_error(target, record)
        return True

    def _prepared(
        self,
        target: logging.Handler,
        start: int,
        end: int,
        reported: type[BaseException],
    ) -> list[logging.LogRecord]:
        """The records ``start:end`` that meet ``target``'s level, each
        carrying its exception as ``target``'s formatter rendered it (a
        formatter set since renders it itself).  A record whose rendering
        failed is reported to ``target`` and left out."""
        level = target.level
        formatter = target.formatter or _DEFAULT_FORMATTER
        eligible = []
        for record, rendered in zip(
            self.records[start:end], self.renderings[start:end]
        ):
            if record.levelno < level:
                continue
            if rendered is not None:
                text: str | Exception | None = None
                for known, found in rendered:
                    if known is formatter:
                        text = found
                if isinstance(text, Exception):
                    try:
                        raise text
                    except reported:
                        report_target_error(target, record)
                    continue
                record.exc_text = text
            eligible.append(record)
        return eligible


def flush_targets(
    targets: Sequence[logging.Handler], reported: type[BaseException]
) -> None:
    """Flush each target; a failure is reported to that target alone."""
    for target in targets:
        try:
            target.flush()
        except reported:
            report_target_error(target, note_record("(flush)"))


def report_target_error(target: logging.Handler, record: logging.LogRecord) -> None:
    with contextlib.suppress(Exception):  # a broken handleError must not
        target.handleError(record)  # cost the other targets their records


def note_record(message: str, level: int = logging.ERROR) -> logging.LogRecord:
    """A record of safelog's own, from logger ``"safelog"``."""
    return logging.LogRecord("safelog", level, __file__, 0, message, None, None)
