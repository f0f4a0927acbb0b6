"""Handing queued records to target handlers, each target on its own.

What one target does with a record (filter, format, write) and whatever it
raises cannot cost another target that record: a failure goes to the failing
target's ``handleError``, for the record it concerns.  A record's exception
is rendered on the caller's side with each target's own formatter
(:func:`render_exception`), and each target gets its own rendering.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import logging
from collections.abc import Callable, Sequence, Sized
from typing import Protocol, Union

__all__ = ["Batch", "Renderings", "flush_targets", "note_record", "render_exception"]

# How each target's formatter rendered a record's exception: the text, or
# what formatException raised.
Renderings = list[tuple[logging.Formatter, Union[str, Exception]]]
# A record with its renderings (None when it had no exception to render).
_Pair = tuple[logging.LogRecord, Union[Renderings, None]]
# A target's way of handling several records at once (see _batch_handler).
_HandleBatch = Callable[[list[logging.LogRecord], type[BaseException]], None]

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
        if not _meets(record, target.level):
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
    """What tells a batch to stop half way: the writer stops after its
    record when a thread takes over (``takers``) or the handler goes
    ``inline``; anyone stops when this process is a forked child of the one
    that took the batch."""

    inline: bool
    forked_away: bool

    @property
    def takers(self) -> Sized: ...


class Batch:
    """Records taken off a queue together, the targets they go to, and, for
    each target, the records it has not been handed yet."""

    __slots__ = ("targets", "unhanded")

    def __init__(
        self,
        records: list[logging.LogRecord],
        renderings: list[Renderings | None],
        targets: tuple[logging.Handler, ...],
    ) -> None:
        self.targets = targets
        pairs = list(zip(records, renderings))
        # Claimed one popleft() at a time: a single call, so a signal handler
        # or target that re-enters hand_out() on this thread (a flush) and
        # the call it interrupted never both hand a record.
        self.unhanded = [collections.deque(pairs) for _ in targets]

    def hand_out(
        self, progress: Progress, reported: type[BaseException], *, stoppable: bool
    ) -> bool:
        """Hand each target the records it has not had yet; return whether
        all have been handed.  What a target raises that is a ``reported``
        goes to its ``handleError``; anything else propagates (a caller's
        own ``KeyboardInterrupt``).  Stops, returning False, when
        ``stoppable`` and the writer is to stop, or when this process
        turns out to be a forked child of the one that took the batch (a
        target forked): the rest is the parent's.

        Re-entered by a target or signal handler that flushes or closes the
        queue handler on the consuming thread: the batch is finished there,
        and the outer call finds nothing left."""
        for target, unhanded in zip(self.targets, self.unhanded):
            while unhanded:
                if progress.forked_away or (
                    stoppable and (progress.takers or progress.inline)
                ):
                    return False
                handle_batch = _batch_handler(target)
                if handle_batch is not None:
                    eligible = _prepared(target, _claim_all(unhanded), reported)
                    try:
                        if eligible:
                            handle_batch(eligible, reported)
                    except reported:  # not one record's (taking the lock): each
                        if progress.forked_away:
                            return False
                        for record in eligible:
                            report_target_error(target, record)
                    continue
                try:
                    claimed = [unhanded.popleft()]
                except IndexError:
                    break
                for record in _prepared(target, claimed, reported):
                    try:
                        target.handle(record)
                    except reported:
                        if progress.forked_away:
                            return False
                        report_target_error(target, record)
        return True


def _batch_handler(target: logging.Handler) -> _HandleBatch | None:
    """``target._handle_batch`` if ``target`` handles several records at
    once now (safelog's stream and file handlers, when they write through a
    descriptor: see there); None if it takes them one by one.

    Looked up on the class, never the instance: a handler that forwards
    unknown attributes to another (``__getattr__``) would answer with that
    one's methods, and its own ``handle()`` would be skipped."""
    cls = type(target)
    takes_batch_now = getattr(cls, "_takes_batch_now", None)
    if takes_batch_now is None or not takes_batch_now(target):
        return None
    handle_batch: _HandleBatch = functools.partial(cls._handle_batch, target)  # type: ignore[attr-defined]
    return handle_batch


def _claim_all(unhanded: collections.deque[_Pair]) -> list[_Pair]:
    claimed = []
    with contextlib.suppress(IndexError):
        while True:
            claimed.append(unhanded.popleft())
    return claimed


def _prepared(
    target: logging.Handler, claimed: list[_Pair], reported: type[BaseException]
) -> list[logging.LogRecord]:
    """The records of ``claimed`` that meet ``target``'s level, each carrying
    its exception as ``target``'s formatter rendered it (a formatter set
    since renders it itself).  A record whose rendering failed is reported
    to ``target`` and left out."""
    level = target.level
    formatter = target.formatter or _DEFAULT_FORMATTER
    eligible = []
    for record, rendered in claimed:
        if level and not _meets(record, level):
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


def _meets(record: logging.LogRecord, level: int) -> bool:
    """Whether ``record`` passes a target's level, as ``Logger.callHandlers``
    checks it.  A record made by hand with no comparable level passes: the
    target's own ``handle()`` takes it, as when called directly."""
    if not level:
        return True
    try:
        return bool(record.levelno >= level)
    except TypeError:
        return True


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
