"""Benchmark safelog.QueueHandler against the standard library, in one run.

Stdlib only; run from the repository root::

    PYTHONPATH=src python benchmarks/bench_queue.py [--quick]

Every number is measured in this process, the arrangements taken in turn
round by round (so that outside load hits them alike), and compared as a
ratio.  The arrangements: a logger whose one handler is a ``NullHandler``
(the floor: creating the record), ``logging.FileHandler``,
``safelog.FileHandler``, the stdlib ``QueueHandler`` + ``QueueListener`` pair
(to a ``logging.FileHandler``), and ``safelog.QueueHandler`` to a
``safelog.FileHandler`` and to a ``logging.FileHandler``.  The format is
``%(asctime)s %(levelname)s %(name)s %(process)d %(threadName)s %(message)s``.

1. Caller cost in bursts: 20 to 50 calls, then 1 to 2 ms idle (a handler
   with a thread catches up meanwhile); only the time inside bursts counts.
   Once with immutable arguments (``%d``, ``%.3f``, ``%s`` of a str), once
   with a list argument (merged at call time).
2. Flood from one thread: records per second until all are on disk.
3. Flood from four threads: wall time per record until all are on disk.
4. Slow sink: the log file is a FIFO (its buffer one page) whose reader,
   another process, stalls 5 ms every 500 lines; caller latency p50, p99.9
   and max, in bursts of 1,000 calls with the queue drained in between.
5. Peak memory growth (tracemalloc) during the one-thread flood, at the
   default ``maxsize``.
6. ``os.fork()`` in the parent while a safelog writer is idle.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import logging
import logging.handlers
import os
import queue
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from fork_timing import fork_seconds

import safelog

MESSAGE = "request %d served in %.3f ms by worker %s"
FORMAT = "%(asctime)s %(levelname)s %(name)s %(process)d %(threadName)s %(message)s"

FLOOR = "floor: NullHandler"
DIRECT = "logging.FileHandler"
SAFE_DIRECT = "safelog.FileHandler"
PAIR = "stdlib QueueHandler+QueueListener"
QUEUED_SAFE = "safelog.QueueHandler->safelog.FH"
QUEUED = "safelog.QueueHandler->logging.FH"
KINDS = [FLOOR, DIRECT, SAFE_DIRECT, PAIR, QUEUED_SAFE, QUEUED]
WRITING = KINDS[1:]


class Setup:
    """A logger with one handler arrangement, and how to wait for its output."""

    def __init__(self, kind: str, path: str) -> None:
        self.kind = kind
        self.logger = logging.getLogger(f"bench.{kind}")
        self.logger.propagate = False
        self.logger.setLevel(logging.INFO)
        self.listener: logging.handlers.QueueListener | None = None
        self.queue: queue.Queue[logging.LogRecord] | None = None
        self.closers: list[Callable[[], None]] = []
        if kind == FLOOR:
            self.logger.addHandler(logging.NullHandler())
        elif kind == DIRECT:
            self.logger.addHandler(self._file(logging.FileHandler, path))
        elif kind == SAFE_DIRECT:
            self.logger.addHandler(self._file(safelog.FileHandler, path))
        elif kind == PAIR:
            self.queue = queue.Queue()
            target = self._file(logging.FileHandler, path)
            self.listener = logging.handlers.QueueListener(
                self.queue, target, respect_handler_level=True
            )
            self.listener.start()
            self.logger.addHandler(logging.handlers.QueueHandler(self.queue))
        elif kind == QUEUED_SAFE:
            target = self._file(safelog.FileHandler, path)
            self.logger.addHandler(safelog.QueueHandler([target]))
        elif kind == QUEUED:
            target = self._file(logging.FileHandler, path)
            self.logger.addHandler(safelog.QueueHandler([target]))
        else:
            raise ValueError(kind)

    def _file(self, cls: type[logging.FileHandler], path: str) -> logging.Handler:
        handler = cls(path)
        handler.setFormatter(logging.Formatter(FORMAT))
        self.closers.append(handler.close)
        return handler

    def drain(self) -> None:
        """Return once everything logged so far is written."""
        for handler in self.logger.handlers:
            if isinstance(handler, safelog.QueueHandler):
                handler.flush()
        if self.queue is not None:
            # QueueListener has no barrier: wait until it took everything,
            # then for the record in its hands.
            while not self.queue.empty():
                time.sleep(0.0005)
            time.sleep(0.002)

    def close(self) -> None:
        for handler in self.logger.handlers[:]:
            self.logger.removeHandler(handler)
            handler.close()
        if self.listener is not None:
            self.listener.stop()
        for closer in self.closers:
            closer()


@contextmanager
def setups(
    directory: str, kinds: list[str], name: str = ""
) -> Iterator[dict[str, Setup]]:
    made = {
        kind: Setup(kind, os.path.join(directory, f"{name}{index}.log"))
        for index, kind in enumerate(kinds)
    }
    try:
        yield made
    finally:
        for setup in made.values():
            setup.close()


def burst_costs(
    made: dict[str, Setup], bursts: int, args: tuple[object, ...]
) -> dict[str, float]:
    """Median seconds per call inside bursts of 20 to 50 calls, each followed
    by 1 to 2 ms idle.  The arrangements take turns burst by burst: the
    machine's state (caches, clock speed after an idle) varies faster than a
    round of several hundred bursts."""
    clock = time.perf_counter
    chance = random.Random(7)
    per_call: dict[str, list[float]] = {kind: [] for kind in made}
    for _ in range(bursts):
        size = chance.randint(20, 50)
        for kind, setup in made.items():
            info = setup.logger.info
            started = clock()
            for _ in range(size):
                info(MESSAGE, *args)
            per_call[kind].append((clock() - started) / size)
            time.sleep(chance.uniform(0.001, 0.002))
    for setup in made.values():
        setup.drain()
    return {kind: statistics.median(found) for kind, found in per_call.items()}


def flood(setup: Setup, calls: int, threads: int = 1) -> float:
    """Wall seconds from the first call until ``calls`` records, logged by
    ``threads`` threads at once, are all written."""
    info = setup.logger.info
    setup.drain()
    each = calls // threads
    start = threading.Barrier(threads + 1)

    def work() -> None:
        start.wait()
        for i in range(each):
            info(MESSAGE, i, 1.5, "w1")

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    start.wait()
    started = time.perf_counter()
    for worker in workers:
        worker.join()
    setup.drain()
    return time.perf_counter() - started


def latencies(setup: Setup, calls: int) -> list[float]:
    """Each call's latency in µs, in bursts of 1,000 drained in between."""
    info = setup.logger.info
    clock = time.perf_counter_ns
    found = []
    for i in range(calls):
        started = clock()
        info(MESSAGE, i, 1.5, "w1")
        found.append((clock() - started) / 1e3)
        if i % 1000 == 999:
            setup.drain()
    setup.drain()
    return sorted(found)


def quantile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * q))]


# The FIFO's reader: another process, so that it takes no GIL from ours.
READER = """
import sys, time
lines = 0
with open(sys.argv[1], "rb") as fifo:
    for _ in fifo:
        lines += 1
        if lines % 500 == 0:
            time.sleep(0.005)
"""


# Linux: a pipe's buffer can be shrunk to one page, so that a writer meets
# the reader's stalls however fast the reader is otherwise.
F_SETPIPE_SZ = 1031


@contextmanager
def slow_fifo(path: str) -> Iterator[None]:
    os.mkfifo(path)
    reader = subprocess.Popen([sys.executable, "-c", READER, path])
    # Opened here first (the reader's open waits for a writer), to size it.
    keeper = os.open(path, os.O_WRONLY)
    with contextlib.suppress(OSError):
        fcntl.fcntl(keeper, F_SETPIPE_SZ, 4096)
    try:
        yield
    finally:
        os.close(keeper)  # with the handler's closed: the reader sees the end
        reader.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    options = parser.parse_args()
    scale = 0.2 if options.quick else 1.0
    rounds = 5
    bursts = int(1000 * scale)
    flood_calls = int(50_000 * scale)
    slow_calls = int(20_000 * scale)
    print(f"Python {sys.version.split()[0]} on {sys.platform}, pid {os.getpid()}")
    with tempfile.TemporaryDirectory() as directory:
        with setups(directory, KINDS) as made:
            burst_costs(made, 5, (1, 1.5, "w1"))  # warm up: writer threads, files

            print("\n1. Caller cost per call inside bursts of 20-50 calls (µs)")
            print(f"   {'handler':36} {'immutable args':>15} {'a list arg':>11}")
            immutable = burst_costs(made, bursts, (1, 1.5, "w1"))
            mutable = burst_costs(made, bursts, (1, 1.5, ["w1"]))
            costs = {kind: (immutable[kind], mutable[kind]) for kind in KINDS}
            for kind, (immutable_cost, mutable_cost) in costs.items():
                print(
                    f"   {kind:36} {immutable_cost * 1e6:15.2f} "
                    f"{mutable_cost * 1e6:11.2f}"
                )
            for queued in (QUEUED_SAFE, QUEUED):
                ours = costs[queued]
                for other, target in (
                    (FLOOR, "target <= 1.2x"),
                    (DIRECT, "target <= 0.55x"),
                    (PAIR, ""),
                ):
                    ratios = ", ".join(
                        f"{me / them:.2f}x" for me, them in zip(ours, costs[other])
                    )
                    note = f" ({target})" if target else ""
                    print(f"   {queued} / {other}{note}: {ratios}")

            print("\n2. Flood from one thread, all records on disk (records/s)")
            walls: dict[str, list[float]] = {kind: [] for kind in WRITING}
            for _ in range(rounds):
                for kind in WRITING:
                    walls[kind].append(flood(made[kind], flood_calls))
            rates = {k: flood_calls / statistics.median(w) for k, w in walls.items()}
            for kind in WRITING:
                print(f"   {kind:36} {rates[kind]:12,.0f}")
            for queued in (QUEUED_SAFE, QUEUED):
                ratio = rates[queued] / rates[DIRECT]
                print(f"   {queued} / {DIRECT} (target >= 1.05x): {ratio:.2f}x")

            print("\n3. Flood from four threads, all on disk (µs per record)")
            walls = {kind: [] for kind in WRITING}
            for _ in range(rounds):
                for kind in WRITING:
                    walls[kind].append(flood(made[kind], flood_calls, threads=4))
            per = {k: statistics.median(w) / flood_calls for k, w in walls.items()}
            for kind in WRITING:
                print(f"   {kind:36} {per[kind] * 1e6:12.2f}")
            for queued in (QUEUED_SAFE, QUEUED):
                ratio = per[queued] / per[DIRECT]
                print(f"   {queued} / {DIRECT} (target <= 0.35x): {ratio:.2f}x")

        print("\n4. Slow sink: a FIFO whose reader stalls 5 ms every 500 lines (µs)")
        print(f"   {'handler':36} {'p50':>8} {'p99.9':>9} {'max':>9}")
        tails: dict[str, tuple[float, float]] = {}
        for kind in (DIRECT, PAIR, QUEUED_SAFE, QUEUED):
            fifo = os.path.join(directory, f"slow{len(tails)}.fifo")
            with slow_fifo(fifo):
                setup = Setup(kind, fifo)
                try:
                    delays = latencies(setup, slow_calls)
                finally:
                    setup.close()
            tails[kind] = (quantile(delays, 0.999), delays[-1])
            print(
                f"   {kind:36} {quantile(delays, 0.5):8.2f} "
                f"{tails[kind][0]:9.1f} {delays[-1]:9.1f}"
            )
        for queued in (QUEUED_SAFE, QUEUED):
            ratio = tails[queued][0] / tails[DIRECT][0]
            print(
                f"   p99.9 {queued} / {DIRECT} (target <= 0.05x): {ratio:.3f}x; "
                f"max {tails[queued][1] / 1e3:.2f} ms (target <= 2 ms)"
            )

        print("\n5. Peak memory growth during a one-thread flood (tracemalloc)")
        with setups(directory, [QUEUED_SAFE], "memory") as made:
            setup = made[QUEUED_SAFE]
            setup.drain()
            tracemalloc.start()
            baseline, _ = tracemalloc.get_traced_memory()
            flood(setup, flood_calls)
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            maxsize = setup.logger.handlers[0].maxsize  # type: ignore[attr-defined]
        growth = (peak - baseline) / 2**20
        print(
            f"   {QUEUED_SAFE}, maxsize={maxsize}: {growth:.2f} MiB (target <= 8 MiB)"
        )

        print("\n6. os.fork() in the parent, median (µs)")
        forks = int(200 * scale) or 20
        time.sleep(0.1)  # let the threads joined above leave the OS thread list
        bare = fork_seconds(forks) * 1e6
        with setups(directory, [QUEUED_SAFE], "fork") as made:
            setup = made[QUEUED_SAFE]
            took = []
            for _ in range(forks):
                setup.logger.info("writer running again")  # restart it
                setup.drain()
                took.append(fork_seconds(1) * 1e6)
            idle = statistics.median(took)
        print(f"   no safelog handler: {bare:8.1f}")
        print(f"   idle safelog writer: {idle:8.1f}  (it stops before, restarts after)")


if __name__ == "__main__":
    main()
