"""The at-fork registry: the one place where safelog reacts to ``fork()``.

Every object of safelog's that holds state a forked child cannot trust (a lock,
a buffer, a thread, a queue, a socket) registers here as a *participant*.  The
registry installs a single ``os.register_at_fork`` hook and, on every fork:

1. before: takes the ``logging`` module lock (as CPython's own hook will), then
   asks each participant, newest first, to reach a quiet state (its lock
   taken, nothing pending); participants registered with ``ahead=True``
   (queue handlers, whose writer thread calls other handlers) go before all
   the others.  All participants share one deadline, so a thread
   stuck in a slow write delays a fork by at most the fork timeout, and a
   lock-order cycle between handlers cannot deadlock it;
2. after, in the parent: each participant, in the opposite order (oldest
   first, those ``ahead`` last), releases what it took;
3. after, in the child: each participant, in that same order, replaces its
   locks with fresh ones and drops whatever the parent will also write.

Participants are held weakly, so a handler that is garbage collected leaves
the registry by itself.  Where ``os.register_at_fork`` does not exist
(Windows), nothing is registered and every handler behaves as a plain one.

A fork made while this thread is already inside these steps (from a signal
handler that interrupted a fork) is *nested*: its before and parent steps do
nothing, since the outer fork holds whatever they would take, and its child
runs every participant's child step, as any child does; a nested child that
returns from the signal handler finishes the outer fork (as a parent) with
the locks balanced.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import threading
import time
import weakref
from typing import Protocol

__all__ = [
    "DEFAULT_FORK_TIMEOUT",
    "ForkParticipant",
    "get_fork_timeout",
    "register",
    "set_fork_timeout",
]

DEFAULT_FORK_TIMEOUT = 0.1
"""Seconds that all participants together may spend reaching a quiet state."""


class ForkParticipant(Protocol):
    """What the registry calls on every fork.  No step may raise or block
    beyond ``deadline``."""

    def before_fork(self, deadline: float) -> None:
        """Reach a quiet state before ``deadline`` (a ``time.monotonic()``
        value) if possible; give up quietly when it passes."""

    def after_fork_in_parent(self) -> None:
        """Release whatever ``before_fork`` took."""

    def after_fork_in_child(self) -> None:
        """Start afresh: new locks, nothing the parent will also write."""


_fork_timeout = DEFAULT_FORK_TIMEOUT
_order = itertools.count()
# Keyed by (1 for those ahead, else 0; registration order): sorted keys give
# the after order, reversed the before order.
_participants: weakref.WeakValueDictionary[tuple[int, int], ForkParticipant] = (
    weakref.WeakValueDictionary()
)
# The participants that saw before_fork, kept alive until their after step.
_forking: list[ForkParticipant] = []
# Held from before a fork until after it, and while registering, so that a
# registration never races a fork.  Always taken after the logging module lock
# (a handler may be created, and so registered, under that lock).  Re-entrant:
# a signal handler may fork, or create a handler, on the thread that holds it.
_registry_lock = threading.RLock()
# How many forks this thread is inside (more than 1: a nested fork).  Only
# the thread holding _registry_lock reads or changes it.
_fork_depth = 0


def get_fork_timeout() -> float:
    """Return the fork timeout in seconds (see :func:`set_fork_timeout`)."""
    return _fork_timeout


def set_fork_timeout(seconds: float) -> None:
    """Set how long, in total, safelog may delay a ``fork()`` to bring its
    handlers to a quiet state.  The default is 0.1 s; 0 means "never wait".

    A handler that is still busy when the time is up is not waited for: the
    child still gets fresh locks, so it cannot hang, and a
    ``safelog.StreamHandler`` drops the parent's bytes from the buffer of the
    stream it inherited.  What the timeout can still cost is described in
    docs/how-it-works.md.
    """
    global _fork_timeout
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise TypeError(f"seconds must be a number, got {seconds!r}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"seconds must be finite and >= 0, got {seconds!r}")
    _fork_timeout = float(seconds)


def register(participant: ForkParticipant, *, ahead: bool = False) -> None:
    """Add ``participant`` to the registry, held weakly, after all earlier
    ones.  With ``ahead``, its before step runs before every participant's
    without ``ahead``, and its after steps after theirs.  Registering the
    same object twice is harmless but wasteful."""
    with _registry_lock:
        _participants[(int(ahead), next(_order))] = participant


def _in_after_order() -> list[ForkParticipant]:
    """Every participant, oldest first and those ahead last: the order of the
    after steps; the before steps take them the other way round."""
    keyed = sorted(_participants.items(), key=lambda item: item[0])
    return [participant for _, participant in keyed]


def _run_step(participants: list[ForkParticipant], step: str, *args: float) -> None:
    # One failing participant must not keep the others from their step.  The
    # first error is raised at the end, and CPython reports exceptions from
    # at-fork hooks through sys.unraisablehook without failing the fork.
    first_error: Exception | None = None
    for participant in participants:
        try:
            getattr(participant, step)(*args)
        except Exception as error:
            if first_error is None:
                first_error = error
    if first_error is not None:
        raise first_error


def _module_lock() -> threading.RLock | None:
    # logging's own before-fork hook takes this lock after ours has run (hooks
    # run newest first).  Taking it first ourselves keeps the lock order that
    # dictConfig uses (module lock, then handler locks), so a fork during a
    # dictConfig call in another thread cannot deadlock on it.
    lock = getattr(logging, "_lock", None)
    return lock if hasattr(lock, "acquire") else None


def _before_fork() -> None:
    global _fork_depth
    module_lock = _module_lock()
    if module_lock is not None:
        module_lock.acquire()
    _registry_lock.acquire()
    _fork_depth += 1
    if _fork_depth > 1:
        return  # nested: the outer fork holds what the participants would take
    deadline = time.monotonic() + _fork_timeout
    _forking[:] = _in_after_order()
    _run_step(_forking[::-1], "before_fork", deadline)


def _after_fork_in_parent() -> None:
    global _fork_depth
    try:
        if _fork_depth == 1:
            _run_step(_forking, "after_fork_in_parent")
    finally:
        _fork_depth -= 1
        if _fork_depth == 0:
            _forking.clear()
        _registry_lock.release()
        module_lock = _module_lock()
        # Not ours to release in a nested child that finishes the outer
        # fork: logging's own hook may have released it already.
        if module_lock is not None and _owns(module_lock):
            module_lock.release()


def _after_fork_in_child() -> None:
    global _registry_lock, _fork_depth
    outer_forks = _fork_depth - 1  # more than 0 in a nested fork's child
    _registry_lock = threading.RLock()
    module_lock = _module_lock()
    if module_lock is not None and hasattr(module_lock, "_at_fork_reinit"):
        # logging's own child hook does this too; doing it here keeps us
        # correct whatever the order of the two hooks.
        module_lock._at_fork_reinit()
    # A nested child that returns from its signal handler finishes the outer
    # forks as their parent, and their parent steps release these once each.
    for _ in range(outer_forks):
        _registry_lock.acquire()
        if module_lock is not None:
            module_lock.acquire()
    _fork_depth = outer_forks
    # Every participant starts afresh (a nested fork's child may have
    # interrupted the outer before steps half way, whatever they took).
    participants = _forking or _in_after_order()
    try:
        _run_step(participants, "after_fork_in_child")
    finally:
        if not outer_forks:  # else the outer fork's parent step needs them
            _forking.clear()


def _owns(lock: object) -> bool:
    is_owned = getattr(lock, "_is_owned", None)
    return bool(is_owned()) if callable(is_owned) else True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before_fork,
        after_in_parent=_after_fork_in_parent,
        after_in_child=_after_fork_in_child,
    )
