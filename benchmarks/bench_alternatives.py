"""Measure safelog against the usual "why not just ..." alternatives, in one run.

Run from the repository root::

    PYTHONPATH=src python benchmarks/bench_alternatives.py [--quick]

Stdlib only, plus ``loguru`` and ``multiprocessing-logging`` where they are
installed; a missing one is reported on a ``skip:`` line and the rest is
measured.  The arrangements compared:

* ``safelog.QueueHandler`` to a ``safelog.FileHandler``;
* the stdlib ``QueueHandler`` + ``QueueListener`` pair (a ``queue.Queue``,
  the listener thread in the parent) to a ``logging.FileHandler``;
* loguru's ``logger.add(path, enqueue=True)``;
* ``multiprocessing_logging.install_mp_handler()`` around a
  ``logging.FileHandler``.

1. Start method: wall time from ``Process.start()`` to ``join()`` of a
   ``multiprocessing`` child that logs one record and returns, and the CPU
   time the child used.  With ``fork`` the child uses the parent's
   ``safelog.FileHandler``; with ``forkserver`` and ``spawn`` it starts with
   no handler and makes one itself.  The methods take turns child by child.
   A spawned child imports this small script again as its main module (and
   so does each forkserver child on a Python with CPython gh-126631); a
   real program's main module costs more, and so does a larger parent for
   ``fork``.  With
   bytecode caching off (``PYTHONDONTWRITEBYTECODE``), each spawned child
   also compiles safelog: say ``PYTHONPYCACHEPREFIX=<scratch dir>`` instead.
2. Records from forked children: 20 children each log 50 records and leave,
   raw ``os.fork()`` children through ``os._exit(0)`` and ``multiprocessing``
   ``fork`` children through their usual exit; the parent is idle at each
   fork, or one of its threads logs all along.  Each scenario runs three
   times, each time in its own interpreter and process group: a child that
   has not left 3 s after the last fork is killed and counted as hung, and
   a scenario still running after 10 s is killed whole, reported with the
   step it was stuck in.  The log file is then read: a child's record not
   in it is lost, one in it twice is duplicated.
3. Caller cost in bursts of 10,000 calls, and the time until all of a burst
   is in the file, with ``logging.FileHandler`` as reference.  The
   arrangements take turns burst by burst, each drained before the next
   (through its own barrier where it has one, then by counting lines).

No number is judged against a fixed time: each is read beside the others
measured in the same run.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import importlib.metadata
import importlib.util
import json
import logging
import logging.handlers
import multiprocessing
import os
import queue
import re
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable

try:
    import safelog
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))
    import safelog

FORMAT = "%(asctime)s %(levelname)s %(name)s %(process)d %(threadName)s %(message)s"
LOGURU_FORMAT = "{time} {level} {name} {process} {thread.name} {message}"

# Each message in the two styles: logging's %-style and loguru's {}-style.
PERCENT, BRACES = 0, 1
MESSAGE = (
    "request %d served in %.3f ms by worker %s",
    "request {} served in {:.3f} ms by worker {}",
)
CHILD_MESSAGE = ("child %d record %d", "child {} record {}")
PARENT_MESSAGE = ("parent record %d", "parent record {}")
CHILD_RECORD = re.compile(r"child (\d+) record (\d+)")
PARENT_RECORD = re.compile(r"parent record (\d+)")

DIRECT = "logging.FileHandler (reference)"
SAFE = "safelog.QueueHandler->safelog.FH"
PAIR = "stdlib QueueHandler+QueueListener"
LOGURU = "loguru add(enqueue=True)"
MPLOG = "multiprocessing_logging"
OPTIONAL = {LOGURU: "loguru", MPLOG: "multiprocessing_logging"}

START_LOGGER = "bench.alternatives.start"
CHILDREN = 20
CHILD_RECORDS = 50
PARENT_RECORDS_BEFORE = 100  # every writer thread is running when we fork
CHILD_DEADLINE = 3.0  # seconds after the last child started
SCENARIO_TIMEOUT = 10.0  # the whole scenario interpreter, then killed
SETTLE_QUIET = 0.3  # a file with no new line for this long is complete
SETTLE_DEADLINE = 10.0
# Children forked raw (os.fork) or as multiprocessing "fork" children, the
# parent idle or with a thread logging.
SCENARIOS = [
    ("os.fork", False),
    ("os.fork", True),
    ("mp fork", False),
    ("mp fork", True),
]


class LineCounter:
    """Lines in a growing file, reading only what was added since last time."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.offset = 0
        self.lines = 0

    def count(self) -> int:
        try:
            with open(self.path, "rb") as file:
                file.seek(self.offset)
                added = file.read()
        except FileNotFoundError:
            return self.lines
        self.offset += len(added)
        self.lines += added.count(b"\n")
        return self.lines

    def wait_for(self, expected: int, deadline: float) -> int:
        """Return once the file has ``expected`` lines, or after ``deadline``
        seconds, or once no line came for ``SETTLE_QUIET`` seconds."""
        started = last_change = time.perf_counter()
        seen = self.count()
        while seen < expected:
            time.sleep(0.0005)
            now = time.perf_counter()
            found = self.count()
            if found != seen:
                seen, last_change = found, now
            elif now - last_change > SETTLE_QUIET or now - started > deadline:
                break
        return seen


class Arrangement:
    """One way of logging to ``path``, its drain and its teardown."""

    def __init__(self, kind: str, path: str) -> None:
        self.kind = kind
        self.path = path
        self.style = PERCENT
        self.barrier: Callable[[], None] | None = None
        self.closers: list[Callable[[], None]] = []
        logger = logging.getLogger(f"bench.alternatives.{kind}")
        logger.propagate = False
        logger.setLevel(logging.INFO)
        self.info: Callable[..., None] = logger.info
        if kind == DIRECT:
            logger.addHandler(self._file(logging.FileHandler(path)))
        elif kind == SAFE:
            handler = safelog.QueueHandler([self._file(safelog.FileHandler(path))])
            logger.addHandler(handler)
            self.barrier = handler.flush
            self.closers.insert(0, handler.close)
        elif kind == PAIR:
            records: queue.Queue[logging.LogRecord] = queue.Queue()
            listener = logging.handlers.QueueListener(
                records, self._file(logging.FileHandler(path))
            )
            listener.start()
            logger.addHandler(logging.handlers.QueueHandler(records))
            self.closers.insert(0, listener.stop)
        elif kind == LOGURU:
            from loguru import logger as loguru_logger

            loguru_logger.remove()  # its default sink writes to stderr
            sink = loguru_logger.add(
                path, enqueue=True, format=LOGURU_FORMAT, level="INFO"
            )
            self.style = BRACES
            self.info = loguru_logger.info
            self.barrier = loguru_logger.complete
            self.closers.append(lambda: loguru_logger.remove(sink))
        elif kind == MPLOG:
            import multiprocessing_logging

            logger.addHandler(self._file(logging.FileHandler(path)))
            multiprocessing_logging.install_mp_handler(logger)
            # The wrapper's close stops its receiving thread first.
            self.closers[:0] = [handler.close for handler in logger.handlers]
        else:
            raise ValueError(f"unknown arrangement {kind!r}")
        self.logger = logger

    def _file(self, handler: logging.FileHandler) -> logging.FileHandler:
        handler.setFormatter(logging.Formatter(FORMAT))
        self.closers.append(handler.close)
        return handler

    def drain(self, counter: LineCounter, expected: int) -> int:
        """Wait until ``expected`` lines are in the file (through the
        library's own barrier where it has one) and return the lines found."""
        if self.barrier is not None:
            self.barrier()
        return counter.wait_for(expected, SETTLE_DEADLINE)

    def close(self) -> None:
        for handler in self.logger.handlers[:]:
            self.logger.removeHandler(handler)
        for closer in self.closers:
            closer()


def why_not(kind: str) -> str | None:
    """Why the arrangement ``kind`` cannot be measured here, or None."""
    if kind not in OPTIONAL:
        return None
    if importlib.util.find_spec(OPTIONAL[kind]) is None:
        return f"{OPTIONAL[kind]} not installed"
    method = multiprocessing.get_start_method()
    if kind == MPLOG and method != "fork":
        return f"{OPTIONAL[kind]} refuses the default start method {method!r}"
    return None


# -- 1. start methods --------------------------------------------------------


def log_once(path: str | None) -> None:
    """A multiprocessing child's work: log one record.  With ``path``, the
    child has no handler yet (spawn, forkserver) and makes one first."""
    logger = logging.getLogger(START_LOGGER)
    if path is not None:
        handler = safelog.FileHandler(path)
        handler.setFormatter(logging.Formatter(FORMAT))
        logger.addHandler(handler)
        logger.propagate = False
        logger.setLevel(logging.INFO)
    logger.info("child %d started", os.getpid())


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def start_costs(directory: str, rounds: int) -> None:
    methods = [
        method
        for method in ("fork", "forkserver", "spawn")
        if method in multiprocessing.get_all_start_methods()
    ]
    paths = {
        method: os.path.join(directory, f"start-{method}.log") for method in methods
    }
    logger = logging.getLogger(START_LOGGER)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler = safelog.FileHandler(paths["fork"])
    handler.setFormatter(logging.Formatter(FORMAT))
    logger.addHandler(handler)
    walls: dict[str, list[float]] = {method: [] for method in methods}
    cpus: dict[str, list[float]] = {method: [] for method in methods}
    hung = dict.fromkeys(methods, 0)
    try:
        for index in range(rounds + 1):  # the first round warms up (forkserver)
            for method in methods:
                context = multiprocessing.get_context(method)
                path = None if method == "fork" else paths[method]
                child = context.Process(target=log_once, args=(path,))
                cpu_before = children_cpu()
                started = time.perf_counter()
                child.start()
                child.join(30)
                wall = time.perf_counter() - started
                if child.is_alive():
                    child.kill()
                    child.join()
                    hung[method] += 1
                    continue
                if index:
                    walls[method].append(wall)
                    cpus[method].append(children_cpu() - cpu_before)
    finally:
        logger.removeHandler(handler)
        handler.close()

    print(f"   {'start method':14} {'median':>8} {'p90':>8} {'child CPU':>10} records")
    medians = {}
    for method in methods:
        found = sorted(walls[method])
        medians[method] = statistics.median(found)
        # A forkserver child is the server's, not ours: its CPU is not seen.
        cpu = (
            "-"
            if method == "forkserver"
            else f"{statistics.median(cpus[method]) * 1e3:10.1f}"
        )
        written = LineCounter(paths[method]).count()
        note = f" ({hung[method]} hung)" if hung[method] else ""
        print(
            f"   {method:14} {medians[method] * 1e3:8.1f} "
            f"{found[int(len(found) * 0.9)] * 1e3:8.1f} {cpu:>10} "
            f"{written}/{rounds + 1}{note}"
        )
    for method in methods[1:]:
        print(f"   {method} / fork: {medians[method] / medians['fork']:.1f}x")


# -- 2. records from forked children -----------------------------------------

# The arrangement a scenario's children inherit (set before they fork).
_inherited: Arrangement | None = None


def child_logs(index: int) -> None:
    """A child's work: log ``CHILD_RECORDS`` records."""
    assert _inherited is not None
    info, message = _inherited.info, CHILD_MESSAGE[_inherited.style]
    for number in range(CHILD_RECORDS):
        info(message, index, number)


def raw_fork_child(index: int) -> int:
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            child_logs(index)
            code = 0
        finally:
            os._exit(code)
    return pid


class Chatter(threading.Thread):
    """A parent thread logging all along, in bursts of 20 records."""

    def __init__(self, arrangement: Arrangement, first: int) -> None:
        super().__init__(name="chatter", daemon=True)
        self.arrangement = arrangement
        self.logged = first
        self.stopping = threading.Event()

    def run(self) -> None:
        info, message = self.arrangement.info, PARENT_MESSAGE[self.arrangement.style]
        while not self.stopping.is_set():
            for _ in range(20):
                info(message, self.logged)
                self.logged += 1
            time.sleep(0.0005)

    def stop(self) -> int:
        self.stopping.set()
        self.join()
        return self.logged


def wait_raw_children(pids: list[int], deadline: float) -> tuple[int, int]:
    """Reap ``pids`` until ``deadline``, then kill the rest: (hung, failed)."""
    waiting = set(pids)
    failed = 0
    while waiting and time.monotonic() < deadline:
        for pid in list(waiting):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                waiting.discard(pid)
                failed += os.waitstatus_to_exitcode(status) != 0
        time.sleep(0.002)
    for pid in waiting:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    return len(waiting), failed


def wait_process_children(
    children: list[multiprocessing.process.BaseProcess], deadline: float
) -> tuple[int, int]:
    hung = failed = 0
    for child in children:
        child.join(max(0.0, deadline - time.monotonic()))
        if child.is_alive():
            child.kill()
            child.join()
            hung += 1
        elif child.exitcode != 0:
            failed += 1
    return hung, failed


def enter_phase(name: str) -> None:
    """Tell the benchmark where the scenario is, for when it must be killed."""
    print(f"phase: {name}", flush=True)


def run_scenario(kind: str, mode: str, busy: bool, directory: str) -> dict[str, int]:
    """In a scenario interpreter: fork the children, then read the file."""
    global _inherited
    # 3.12+: forking while a thread runs warns; here it is the point.
    warnings.filterwarnings(
        "ignore", message=".*use of fork", category=DeprecationWarning
    )
    path = os.path.join(directory, "scenario.log")
    arrangement = Arrangement(kind, path)
    _inherited = arrangement
    info, parent_message = arrangement.info, PARENT_MESSAGE[arrangement.style]
    for number in range(PARENT_RECORDS_BEFORE):
        info(parent_message, number)
    counter = LineCounter(path)
    arrangement.drain(counter, PARENT_RECORDS_BEFORE)
    chatter = Chatter(arrangement, PARENT_RECORDS_BEFORE) if busy else None
    if chatter is not None:
        chatter.start()
        time.sleep(0.01)
    enter_phase("at fork")
    if mode == "os.fork":
        pids = [raw_fork_child(index) for index in range(CHILDREN)]
        enter_phase("waiting")
        hung, failed = wait_raw_children(pids, time.monotonic() + CHILD_DEADLINE)
    else:
        context = multiprocessing.get_context("fork")
        children = [
            context.Process(target=child_logs, args=(index,))
            for index in range(CHILDREN)
        ]
        for child in children:
            child.start()
        enter_phase("waiting")
        hung, failed = wait_process_children(
            children, time.monotonic() + CHILD_DEADLINE
        )
    enter_phase("draining")
    parent_logged = chatter.stop() if chatter is not None else PARENT_RECORDS_BEFORE
    arrangement.drain(counter, parent_logged + CHILDREN * CHILD_RECORDS)
    with open(path, encoding="utf-8", errors="replace") as file:
        text = file.read()
    child_found = CHILD_RECORD.findall(text)
    parent_found = PARENT_RECORD.findall(text)
    return {
        "hung": hung,
        "failed": failed,
        "child_lost": CHILDREN * CHILD_RECORDS - len(set(child_found)),
        "child_duplicated": len(child_found) - len(set(child_found)),
        "parent_lost": parent_logged - len(set(parent_found)),
        "parent_duplicated": len(parent_found) - len(set(parent_found)),
    }


def scenario_outcome(kind: str, mode: str, busy: bool, directory: str) -> str:
    """Run one scenario in its own interpreter and process group, killed
    whole after ``SCENARIO_TIMEOUT``; describe the outcome in a few words."""
    spec = json.dumps([kind, mode, busy, directory])
    process = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "--scenario", spec],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, children included
    )
    try:
        out, err = process.communicate(timeout=SCENARIO_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, _ = process.communicate()
        phases = [line[7:] for line in out.splitlines() if line.startswith("phase: ")]
        return f"parent hung {phases[-1] if phases else 'starting'}"
    try:
        found = json.loads(out.strip().splitlines()[-1])
    except (IndexError, ValueError):
        last = err.strip().splitlines()[-1:] or [f"exit {process.returncode}"]
        return f"error: {last[0][:40]}"
    words = [f"{found['child_lost']} lost"]
    if found["hung"]:
        words.append(f"{found['hung']} hung")
    if found["failed"]:
        words.append(f"{found['failed']} failed")
    if found["child_duplicated"]:
        words.append(f"{found['child_duplicated']} dup")
    if found["parent_lost"] or found["parent_duplicated"]:
        words.append(
            f"parent {found['parent_lost']} lost/{found['parent_duplicated']} dup"
        )
    return ", ".join(words)


def children_table(kinds: list[str], root: str, runs: int) -> None:
    """Each scenario ``runs`` times: a hang depends on where the parent's
    threads are at the instant of fork."""
    print(f"   {'arrangement':34} {'children':9} {'parent':7} outcomes of {runs} runs")
    for kind in kinds:
        label = kind
        for mode, busy in SCENARIOS:
            outcomes = collections.Counter(
                scenario_outcome(kind, mode, busy, tempfile.mkdtemp(dir=root))
                for _ in range(runs)
            )
            text = "; ".join(f"{n}x {outcome}" for outcome, n in outcomes.items())
            print(f"   {label:34} {mode:9} {'busy' if busy else 'idle':7} {text}")
            label = ""


# -- 3. caller cost -----------------------------------------------------------


def burst_costs(kinds: list[str], directory: str, calls: int, rounds: int) -> None:
    made = {
        kind: Arrangement(kind, os.path.join(directory, f"burst{i}.log"))
        for i, kind in enumerate(kinds)
    }
    counters = {kind: LineCounter(made[kind].path) for kind in kinds}
    written = dict.fromkeys(kinds, 0)
    lost = dict.fromkeys(kinds, 0)
    callers: dict[str, list[float]] = {kind: [] for kind in kinds}
    on_disk: dict[str, list[float]] = {kind: [] for kind in kinds}
    clock = time.perf_counter
    try:
        for index in range(rounds + 1):  # the first round warms up
            for kind, arrangement in made.items():
                info, message = arrangement.info, MESSAGE[arrangement.style]
                size = calls if index else calls // 10
                started = clock()
                for number in range(size):
                    info(message, number, 1.5, "w1")
                called = clock()
                written[kind] += size
                found = arrangement.drain(counters[kind], written[kind])
                done = clock()
                lost[kind] = written[kind] - found
                if index:
                    callers[kind].append((called - started) / size)
                    on_disk[kind].append((done - started) / size)
    finally:
        for arrangement in made.values():
            arrangement.close()

    print(f"   {'arrangement':34} {'caller':>8} {'on disk':>8}")
    caller = {kind: statistics.median(found) for kind, found in callers.items()}
    disk = {kind: statistics.median(found) for kind, found in on_disk.items()}
    for kind in kinds:
        note = f"  ({lost[kind]} not in the file)" if lost[kind] else ""
        print(f"   {kind:34} {caller[kind] * 1e6:8.2f} {disk[kind] * 1e6:8.2f}{note}")
    for kind in kinds:
        if kind != SAFE:
            print(
                f"   {kind} / {SAFE}: caller {caller[kind] / caller[SAFE]:.2f}x, "
                f"on disk {disk[kind] / disk[SAFE]:.2f}x"
            )


def versions() -> str:
    found = []
    for name in ("loguru", "multiprocessing-logging"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found.append(f"{name} {importlib.metadata.version(name)}")
    return ", ".join(found) or "stdlib only"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--scenario", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.scenario is not None:
        kind, mode, busy, directory = json.loads(options.scenario)
        print(json.dumps(run_scenario(kind, mode, busy, directory)), flush=True)
        os._exit(0)  # the third-party exit hooks are not what is measured
    scale = 0.3 if options.quick else 1.0
    started = time.perf_counter()
    print(f"Python {sys.version.split()[0]} on {sys.platform}; {versions()}")
    kinds = []
    for kind in (SAFE, PAIR, LOGURU, MPLOG):
        reason = why_not(kind)
        if reason is None:
            kinds.append(kind)
        else:
            print(f"skip: {reason}")
    if sys.flags.dont_write_bytecode:
        # multiprocessing passes -B on: every spawned child compiles from
        # source whatever has no bytecode yet (safelog, in a checkout).
        print("note: bytecode caching is off (-B): spawn children compile safelog")
    with tempfile.TemporaryDirectory() as directory:
        print("\n1. multiprocessing child that logs one record: start() to join() (ms)")
        start_costs(directory, max(5, int(20 * scale)))

        print(
            f"\n2. Records from {CHILDREN} forked children x {CHILD_RECORDS} "
            f"(lost of {CHILDREN * CHILD_RECORDS}; hung children of {CHILDREN})"
        )
        print("   idle: the parent logs nothing while forking; busy: a thread logs")
        children_table(kinds, directory, runs=1 if options.quick else 3)

        calls = int(10_000 * scale)
        print(
            f"\n3. Bursts of {calls:,} calls: caller cost, and until all are in the "
            "file (µs per record)"
        )
        burst_costs([DIRECT, *kinds], directory, calls, rounds=5)
    print(f"\n(whole run {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
