"""The fork harness, written once for ``python -m safelog demo`` and the tests.

* :func:`start` and :func:`finish` run a child interpreter in a process group
  of its own and kill that group alone when its deadline passes, so a deadlock
  ends as an :class:`Outcome` with ``hung`` set, never as a stalled caller.
* :func:`run_scenario` has threads log while the main thread forks children
  that log too; :func:`wait_for_children` reaps each child by its deadline and
  kills the ones still running then.
* :func:`count_records` tallies records lost, duplicated and torn: every
  record carries a unique id (:data:`RECORD_FORMAT`).

Not public API: the demo and the tests import it; no handler ever does.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, NamedTuple, NoReturn

#: Threads that log without pause while the main thread forks.
LOGGING_THREADS = 2
#: Records each forked child logs before it leaves with ``os._exit``.
RECORDS_PER_CHILD = 3
#: Pause between forks: long enough for the threads to be back inside a write,
#: short enough that 50 forks take one second.
FORK_INTERVAL = 0.02
#: Lines of unexpected output a result keeps as a sample.
OTHER_LINES_KEPT = 5

RECORD_FORMAT = "<<rec %s:%d>>"
RECORD = re.compile(r"<<rec ([pc]\d+:\d+)>>")
# A line with a piece of a record in it, but not exactly one record.
_RECORD_PIECE = re.compile(r"<<|>>|rec [pc]|\b[pc]\d+:\d+\b")


# --- a child interpreter with a deadline --------------------------------------


@dataclasses.dataclass
class Outcome:
    """What a child interpreter did: its exit status and output, or that it
    hung (``returncode`` None)."""

    returncode: int | None
    stdout: str
    stderr: str
    hung: bool
    timeout: float

    def describe(self) -> str:
        status = (
            f"hung (killed after {self.timeout:g} s)"
            if self.hung
            else f"exit status {self.returncode}"
        )
        return (
            f"scenario {status}\n--- stdout (tail) ---\n{self.stdout[-3000:]}"
            f"\n--- stderr (tail) ---\n{self.stderr[-3000:]}"
        )


def child_environment(
    overrides: Mapping[str, str | None] | None = None,
) -> dict[str, str]:
    """Our environment with ``overrides`` applied (a value of None removes the
    variable), and this safelog first on ``PYTHONPATH``: the child imports
    this very package, wherever it was found."""
    environment = dict(os.environ)
    for name, value in (overrides or {}).items():
        if value is None:
            environment.pop(name, None)
        else:
            environment[name] = value
    package_parent = str(Path(__file__).resolve().parent.parent)
    search_path = [package_parent, environment.get("PYTHONPATH", "")]
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, search_path))
    return environment


def start(
    args: Sequence[str],
    *,
    env: Mapping[str, str | None] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    stderr: int | IO[Any] = subprocess.PIPE,
) -> subprocess.Popen[str]:
    """Start ``python *args`` with :func:`child_environment` (``env`` its
    overrides) in a process group of its own; :func:`finish` waits for it."""
    return subprocess.Popen(
        [sys.executable, *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=stderr,
        env=child_environment(env),
        cwd=cwd,
        text=True,
        errors="replace",
        start_new_session=True,  # its own process group: we kill only that
    )


def finish(process: subprocess.Popen[str], timeout: float) -> Outcome:
    """Wait for ``process`` at most ``timeout`` seconds, then kill its process
    group.  Interrupted, it kills the group too: nothing is left behind."""
    try:
        stdout, stderr = process.communicate(timeout=timeout)
        return Outcome(process.returncode, stdout, stderr or "", False, timeout)
    except subprocess.TimeoutExpired:
        _kill_group(process)
        stdout, stderr = process.communicate()
        return Outcome(None, stdout, stderr or "", True, timeout)
    finally:
        if process.returncode is None:
            _kill_group(process)
            process.wait()


def _kill_group(process: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):  # it ended just now
        os.killpg(process.pid, signal.SIGKILL)


# --- threads log while the main thread forks ----------------------------------


@dataclasses.dataclass(frozen=True)
class ScenarioResult:
    """What :func:`run_scenario` counted."""

    forks: int
    logged: int  # children that logged and exited with status 0
    hung: int  # children killed after the timeout
    crashed: int  # children that exited otherwise
    records: int  # records that should be in the log
    lost: int
    duplicated: int  # extra copies of records
    torn: int  # lines holding a piece of a record but not exactly one
    other_lines: int  # lines that are no record at all (tracebacks, warnings)
    other_sample: list[str]

    @property
    def clean(self) -> bool:
        """Every child logged, and every record is in the log exactly once."""
        return self.logged == self.forks and not (
            self.lost or self.duplicated or self.torn or self.other_lines
        )


def run_scenario(
    handler: logging.Handler, *, forks: int, timeout: float, log_path: Path
) -> ScenarioResult:
    """Threads log through ``handler`` while the main thread forks ``forks``
    children that log too; wait for each child at most ``timeout`` seconds,
    then count the records in ``log_path``, where ``handler`` writes.  Forks
    with threads running: call it only in a process of its own."""
    # Python 3.12+ warns that forking a multi-threaded process may deadlock
    # the child.  Here that is the point of the exercise, so the warning is
    # expected and kept out of the log.
    warnings.filterwarnings(
        "ignore",
        message=r"This process \(pid=\d+\) is multi-threaded, use of fork\(\)",
        category=DeprecationWarning,
    )
    logger = logging.getLogger("safelog.demo")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)

    stop = threading.Event()
    logged_by_thread = [0] * LOGGING_THREADS

    def log_until_stopped(index: int) -> None:
        count = 0
        while not stop.is_set():
            logger.info(RECORD_FORMAT, f"p{index}", count)
            count += 1
        logged_by_thread[index] = count

    threads = [
        threading.Thread(target=log_until_stopped, args=(index,), daemon=True)
        for index in range(LOGGING_THREADS)
    ]
    for thread in threads:
        thread.start()

    child_index: dict[int, int] = {}
    deadlines: dict[int, float] = {}
    try:
        for index in range(forks):
            time.sleep(FORK_INTERVAL)  # let the threads get back into a write
            pid = os.fork()
            if pid == 0:
                _log_in_child_and_exit(logger, index)
            child_index[pid] = index
            deadlines[pid] = time.monotonic() + timeout
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        exit_codes = wait_for_children(deadlines)
    handler.flush()
    handler.close()

    expected = [
        f"p{index}:{seq}"
        for index, count in enumerate(logged_by_thread)
        for seq in range(count)
    ]
    logged = [pid for pid, code in exit_codes.items() if code == 0]
    expected += [
        f"c{child_index[pid]}:{seq}"
        for pid in logged
        for seq in range(RECORDS_PER_CHILD)
    ]
    hung = sum(1 for code in exit_codes.values() if code is None)
    tally = count_records(log_path.read_bytes().decode("utf-8", "replace"), expected)
    return ScenarioResult(
        forks=forks,
        logged=len(logged),
        hung=hung,
        crashed=len(exit_codes) - len(logged) - hung,
        records=len(expected),
        lost=tally.lost,
        duplicated=tally.duplicated,
        torn=tally.torn,
        other_lines=len(tally.other),
        other_sample=tally.other[:OTHER_LINES_KEPT],
    )


def _log_in_child_and_exit(logger: logging.Logger, index: int) -> NoReturn:
    status = 1
    try:
        for seq in range(RECORDS_PER_CHILD):
            logger.info(RECORD_FORMAT, f"c{index}", seq)
        status = 0
    finally:
        # Never return into the parent's code, and never flush the parent's
        # buffers a second time at exit.
        os._exit(status)


def wait_for_children(deadlines: Mapping[int, float]) -> dict[int, int | None]:
    """Reap each child (pid to its deadline on the ``time.monotonic`` clock)
    by its deadline; kill the ones still running then.  Return each child's
    exit code, None for the ones killed."""
    exit_codes: dict[int, int | None] = {}
    pending = dict(deadlines)
    while pending:
        for pid, deadline in list(pending.items()):
            reaped, status = os.waitpid(pid, os.WNOHANG)
            if reaped:
                exit_codes[pid] = os.waitstatus_to_exitcode(status)
            elif time.monotonic() >= deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                exit_codes[pid] = None
            else:
                continue
            del pending[pid]
        if pending:
            time.sleep(0.005)
    return exit_codes


class Tally(NamedTuple):
    """What :func:`count_records` found in a log."""

    lost: int  # expected ids not in the log
    duplicated: int  # extra copies of any record
    torn: int  # lines with a piece of a record that are not exactly one
    other: list[str]  # lines with no record in them at all


def count_records(text: str, expected: Iterable[str]) -> Tally:
    """Compare the log ``text`` with the record ids that should be in it."""
    seen: collections.Counter[str] = collections.Counter()
    torn = 0
    other: list[str] = []
    for line in text.splitlines():
        match = RECORD.fullmatch(line)
        if match:
            seen[match.group(1)] += 1
        elif _RECORD_PIECE.search(line):
            torn += 1
        elif line.strip():
            other.append(line)
    lost = sum(1 for record_id in expected if record_id not in seen)
    duplicated = sum(copies - 1 for copies in seen.values())
    return Tally(lost, duplicated, torn, other)
