"""The fork harness, written once for ``python -m safelog demo`` and the tests.

* :func:`start` and :func:`finish` run a child interpreter in a process group
  of its own and kill that group alone when its deadline passes, so a deadlock
  ends as an :class:`Outcome` with ``hung`` set, never as a stalled caller.
* :func:`run_scenario` has :class:`LoggingThreads` log while the main thread
  forks children that log too; :class:`ForkedChildren` (over
  :func:`wait_for_children`) reaps each child by its deadline and kills the
  ones still running then.
* :func:`count_records` tallies records lost, duplicated and torn: every
  record is a line that :func:`record_line` builds from a unique id, with a
  checksum, so a line spliced from two records never passes for one.

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
import zlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, NoReturn

#: Threads that log without pause while the main thread forks.
LOGGING_THREADS = 2
#: Records each forked child logs before it leaves with ``os._exit``.
RECORDS_PER_CHILD = 3
#: Pause between forks: long enough for the threads to be back inside a write,
#: short enough that 50 forks take one second.
FORK_INTERVAL = 0.02
#: Lines of unexpected output a result keeps as a sample.
OTHER_LINES_KEPT = 5


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


def ignore_fork_warning() -> None:
    """Ignore the DeprecationWarning Python 3.12+ gives when a process with
    threads forks: where forking with threads is the point of the exercise,
    it is expected, and it must not land in a log under test."""
    warnings.filterwarnings(
        "ignore",
        message=r"This process \(pid=\d+\) is multi-threaded, use of fork\(\)",
        category=DeprecationWarning,
    )


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
    unexpected: int = 0  # records no one should have logged (see Tally)
    sample: list[str] = dataclasses.field(default_factory=list)  # see Tally

    @property
    def clean(self) -> bool:
        """Every child logged, and every record is in the log exactly once."""
        return self.logged == self.forks and not (
            self.lost
            or self.duplicated
            or self.torn
            or self.other_lines
            or self.unexpected
        )


def run_scenario(
    handler: logging.Handler,
    *,
    forks: int,
    timeout: float,
    log_path: Path,
    threads: int = LOGGING_THREADS,
    records_per_child: int = RECORDS_PER_CHILD,
    fork_interval: float = FORK_INTERVAL,
    mixed_exits: bool = False,
) -> ScenarioResult:
    """``threads`` threads log through ``handler`` while the main thread
    forks ``forks`` children, ``fork_interval`` seconds apart, that log
    ``records_per_child`` records each; wait for each child at most
    ``timeout`` seconds, then count the records in ``log_path``, where
    ``handler`` writes.

    Children leave by ``os._exit``, as multiprocessing's do; with
    ``mixed_exits`` every other one leaves by ``sys.exit`` instead, so its
    atexit handlers, ``logging.shutdown`` and the finalization of all it
    inherited run (and it unwinds through the caller's code on its way out).
    Forks with threads running: call it only in a process of its own."""
    ignore_fork_warning()
    logger = logging.getLogger("safelog.demo")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    logging_threads = LoggingThreads(logger, threads)
    children = ForkedChildren(timeout)
    parent = os.getpid()
    expected: list[str] = []
    try:
        for index in range(forks):
            time.sleep(fork_interval)  # let the threads get back into a write
            pid = os.fork()
            if pid == 0:
                normal_exit = mixed_exits and index % 2 == 1
                _log_in_child_and_exit(logger, index, records_per_child, normal_exit)
            children.add(pid, index)
    finally:
        # A child leaving by sys.exit unwinds through here too; the threads
        # and the children are the parent's alone.
        if os.getpid() == parent:
            expected += logging_threads.stop()
            children.wait()
    handler.flush()
    handler.close()
    expected += [
        f"c{index}:{seq}"
        for index in children.exited_ok()
        for seq in range(records_per_child)
    ]
    tally = count_records(log_path.read_bytes().decode("utf-8", "replace"), expected)
    return _scenario_result(forks, children, len(expected), tally)


def _scenario_result(
    forks: int, children: ForkedChildren, records: int, tally: Tally
) -> ScenarioResult:
    return ScenarioResult(
        forks=forks,
        logged=len(children.exited_ok()),
        hung=len(children.hung),
        crashed=len(children.failed()),
        records=records,
        lost=tally.lost,
        duplicated=tally.duplicated,
        torn=tally.torn,
        other_lines=len(tally.other),
        other_sample=tally.other[:OTHER_LINES_KEPT],
        unexpected=tally.unexpected,
        sample=tally.sample,
    )


def _log_in_child_and_exit(
    logger: logging.Logger, index: int, records: int, normal_exit: bool
) -> NoReturn:
    status = 1
    try:
        for seq in range(records):
            logger.info(record_line(f"c{index}:{seq}"))
        status = 0
    finally:
        if status or not normal_exit:
            # Never return into the parent's code, and never flush the
            # parent's buffers a second time at exit.
            os._exit(status)
    sys.exit(0)


#: Records each logging thread logs at most: a scenario whose main thread
#: stalls must not fill the disk meanwhile.
MOST_RECORDS_PER_THREAD = 1_000_000


class LoggingThreads:
    """``count`` threads that log records ``p<thread>:<n>`` through
    ``logger`` without pause from construction until :meth:`stop` (or
    ``MOST_RECORDS_PER_THREAD`` each).  Daemon threads: a scenario that dies
    does not wait for them."""

    def __init__(self, logger: logging.Logger, count: int) -> None:
        self._stop = threading.Event()
        self._logged = [0] * count
        self._threads = [
            threading.Thread(target=self._log, args=(logger, index), daemon=True)
            for index in range(count)
        ]
        for thread in self._threads:
            thread.start()

    def _log(self, logger: logging.Logger, index: int) -> None:
        seq = 0
        while not self._stop.is_set() and seq < MOST_RECORDS_PER_THREAD:
            logger.info(record_line(f"p{index}:{seq}"))
            seq += 1
            self._logged[index] = seq  # kept right even if a call raises

    def stop(self) -> list[str]:
        """Stop the threads, wait for them, and return the ids of the
        records they logged."""
        self._stop.set()
        for thread in self._threads:
            thread.join()
        return [
            f"p{index}:{seq}"
            for index, count in enumerate(self._logged)
            for seq in range(count)
        ]


class ForkedChildren:
    """Children this process forked, each numbered by the caller and given
    ``deadline`` seconds from :meth:`add` to exit.  The parent alone calls
    :meth:`wait`; results are by number in ``exit_codes`` and ``hung``."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.exit_codes: dict[int, int] = {}
        self.hung: list[int] = []  # killed at their deadline
        self._running: dict[int, tuple[int, float]] = {}  # pid: number, deadline

    def add(self, pid: int, number: int) -> None:
        self._running[pid] = (number, time.monotonic() + self.deadline)

    def wait(self) -> None:
        """Reap every child added since the last call, as
        :func:`wait_for_children` does."""
        deadlines = {pid: deadline for pid, (_, deadline) in self._running.items()}
        for pid, code in wait_for_children(deadlines).items():
            number = self._running.pop(pid)[0]
            if code is None:
                self.hung.append(number)
            else:
                self.exit_codes[number] = code

    def exited_ok(self) -> list[int]:
        return sorted(number for number, code in self.exit_codes.items() if code == 0)

    def failed(self) -> list[int]:
        return sorted(number for number, code in self.exit_codes.items() if code)


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


# --- records and their tally -------------------------------------------------

#: Ids or lines of each kind (lost, torn, ...) a tally keeps as a sample.
SAMPLE_PER_KIND = 3

#: The shape of a record line (see :func:`record_line`); group 1 is its id.
#: Only :func:`count_records` also checks that a line is the record itself.
RECORD = re.compile(r"<<rec ([pc]\d+:\d+)\|[^|]*\|[0-9a-f]{8}>>")
# A line with a piece of a record in it: a marker, an id or a checksum.
_RECORD_PIECE = re.compile(r"<<|>>|rec [pc]|\b[pc]\d+:\d+\b|\|[0-9a-f]{8}\b")


def record_line(record_id: str) -> str:
    """The record ``record_id`` (``p<thread>:<n>`` for a thread's records,
    ``c<child>:<n>`` for a forked child's) as one line of the log, without
    its line end: ``<<rec ID|PADDING|CHECKSUM>>``.

    A pure function of the id, so :func:`count_records` can check every line
    by building it again.  The padding's length varies with the id, so records
    end at every offset of a stream's buffer, and its "é" are two bytes each,
    which a torn write can split; the CRC-32 covers id and padding."""
    spread = zlib.crc32(record_id.encode())
    text = f"{record_id}|{'é' * (spread % 5)}{'x' * (spread // 5 % 120)}"
    return f"<<rec {text}|{zlib.crc32(text.encode()):08x}>>"


@dataclasses.dataclass(frozen=True)
class Tally:
    """What :func:`count_records` found in a log."""

    lost: int  # expected ids with no whole record in the log
    duplicated: int  # extra copies of any record
    torn: int  # lines with a piece of a record that are not exactly one
    other: list[str]  # lines with no piece of a record (tracebacks, warnings)
    unexpected: int = 0  # whole records whose ids were not expected
    #: A few of the ids and lines behind the counts, for a failure message.
    #: Not compared, so a test can compare a tally with the one it expects.
    sample: list[str] = dataclasses.field(default_factory=list, compare=False)

    @property
    def clean(self) -> bool:
        """Every expected record is in the log exactly once, and nothing else."""
        return not (
            self.lost or self.duplicated or self.torn or self.other or self.unexpected
        )


def count_records(text: str, expected: Iterable[str]) -> Tally:
    """Compare the log ``text`` with the ids of the records that should be in
    it (see :func:`record_line`).

    A line counts as a record only when it is exactly the record its id
    names, so a line spliced from pieces of two records is torn, never a
    record, and both records it holds pieces of are lost.  A record is whole
    only with its line end: one after the last line end is torn.  Any other
    line, a blank one included (a line end written twice), is ``other``."""
    *lines, unterminated = text.split("\n")
    seen: collections.Counter[str] = collections.Counter()
    torn: list[str] = []
    other: list[str] = []
    for line in lines:
        match = RECORD.fullmatch(line)
        if match and line == record_line(match.group(1)):
            seen[match.group(1)] += 1
        else:
            _sort_out(line, torn, other)
    if unterminated:  # even a whole record, with no line end
        _sort_out(unterminated, torn, other)
    expected_ids = set(expected)
    lost = sorted(expected_ids - seen.keys())
    duplicated = sorted(rid for rid, copies in seen.items() if copies > 1)
    unexpected = sorted(seen.keys() - expected_ids)
    found = {"lost": lost, "duplicated": duplicated, "unexpected": unexpected}
    sample = [f"torn {line[:200]!r}" for line in torn[:SAMPLE_PER_KIND]]
    sample += [
        f"{kind} {rid}" for kind, ids in found.items() for rid in ids[:SAMPLE_PER_KIND]
    ]
    return Tally(
        lost=len(lost),
        duplicated=sum(copies - 1 for copies in seen.values()),
        torn=len(torn),
        other=other,
        unexpected=len(unexpected),
        sample=sample,
    )


def _sort_out(line: str, torn: list[str], other: list[str]) -> None:
    if _RECORD_PIECE.search(line):
        torn.append(line)
    else:
        other.append(line)
