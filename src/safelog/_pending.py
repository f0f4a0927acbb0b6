"""Records safelog still holds for this process: ``safelog.flush()`` and the
exit hooks that write them.

Two kinds of handler keep a record after the log call that made it returns:
a ``safelog.QueueHandler`` (queued for its writer thread) and a
``safelog.RFC5424Handler`` (spooled while its collector is away); the
network handlers keep a count of records they dropped, not reported yet.
Each kind registers a stage here.  :func:`flush` and the exit hooks run the
stages in order, queues first: a queue's target may be a spooling handler,
and what the queue hands it must be spooled before the spool is sent.
"""

from __future__ import annotations

import atexit
import contextlib
import threading
from typing import Callable

__all__ = ["DROP_REPORTS", "QUEUES", "SPOOLS", "flush", "register"]

QUEUES = 0
SPOOLS = 1
DROP_REPORTS = 2

# stage -> (flush every handler of that kind, ready them all for exit)
_stages: dict[int, tuple[Callable[[], None], Callable[[], None]]] = {}


def register(
    stage: int, flush_all: Callable[[], None], before_exit: Callable[[], None]
) -> None:
    """Make ``flush_all`` part of :func:`flush`, and ``before_exit`` part of
    the exit hooks, at ``stage``."""
    _stages[stage] = (flush_all, before_exit)


def flush() -> None:
    """Write everything logged so far through every ``safelog.QueueHandler``
    in this process, and flush their targets; then send what every
    ``safelog.RFC5424Handler`` has spooled (each waits at most its
    ``flush_timeout``); then report the records the network handlers
    dropped and have not reported yet.

    Needed before ``os._exit()`` in a process that is not a forked child
    (a forked child writes each queued record before its log call
    returns), unless ``safelog.install()`` was called."""
    for stage in sorted(_stages):
        _stages[stage][0]()


def _before_exit() -> None:
    for stage in sorted(_stages):
        # One broken kind of handler must not keep the others' records unwritten.
        with contextlib.suppress(Exception):
            _stages[stage][1]()


def _register_exit_hooks() -> None:
    # threading's exit hooks run before non-daemon threads are joined, at
    # normal exit and also in multiprocessing children that leave through
    # os._exit (fork, forkserver), where atexit does not run.  atexit is the
    # fallback; our atexit hook runs before logging.shutdown (registered
    # earlier, run later), so nothing is pending when the handlers close.
    register_threading_exit = getattr(threading, "_register_atexit", None)
    if register_threading_exit is not None:
        # RuntimeError: imported while the interpreter shuts down.
        with contextlib.suppress(RuntimeError):
            register_threading_exit(_before_exit)
    atexit.register(_before_exit)


_register_exit_hooks()
