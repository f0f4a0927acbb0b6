"""Benchmark safelog.QueueHandler against the standard library, in one run.

Stdlib only; run from the repository root::

    PYTHONPATH=src python benchmarks/bench_queue.py [--quick]

What it measures, each against the stdlib in the same process:

1. Caller-side cost per log call, ``logger.info("... %d", i)``, for a logger
   whose only handler is: a ``NullHandler`` (the floor), a
   ``logging.FileHandler``, the stdlib ``QueueHandler`` + ``QueueListener``
   (to a ``FileHandler``), and ``safelog.QueueHandler`` (to a
   ``FileHandler``).  Two ways:

   * burst: 1,000 calls timed together, then the queue is drained untimed
     (the queue absorbs a burst; the writer runs between bursts);
   * sustained: 50,000 calls back to back while the writer works in
     parallel.  Wall time per call, and the caller thread's own CPU time
     (``time.thread_time``), which leaves out time spent waiting for the
     GIL while the writer thread holds it.

2. End-to-end throughput: records per second until all are on disk
   (median of 5 runs of 50,000 calls, taken round robin).
3. Caller latency (p50, p99, max) when the target stalls 1 ms every 100
   records.
4. The cost of ``os.fork()`` in the parent while the writer is idle.
"""

from __future__ import annotations

import argparse
import logging
import logging.handlers
import os
import queue
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from fork_timing import fork_seconds

import safelog

MESSAGE = "request %d served in %.3f ms by worker %s"
FORMAT = "%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"


class Setup:
    """A logger with one handler arrangement, and how to wait for its output."""

    def __init__(self, name: str, directory: str) -> None:
        self.name = name
        self.path = os.path.join(directory, name.replace(" ", "_") + ".log")
        self.logger = logging.getLogger(f"bench.{name}")
        self.logger.propagate = False
        self.logger.setLevel(logging.INFO)
        self.listener: logging.handlers.QueueListener | None = None
        self.queue: queue.Queue[logging.LogRecord] | None = None
        self.closers: list[Callable[[], None]] = []

    def file_handler(
        self, cls: type[logging.FileHandler] = logging.FileHandler
    ) -> logging.FileHandler:
        handler = cls(self.path)
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


def make(
    kind: str, directory: str, target_cls: type[logging.FileHandler] | None = None
) -> Setup:
    setup = Setup(kind, directory)
    target_cls = target_cls or logging.FileHandler
    if kind == "floor: NullHandler":
        setup.logger.addHandler(logging.NullHandler())
    elif kind == "logging.FileHandler":
        setup.logger.addHandler(setup.file_handler(target_cls))
    elif kind == "stdlib QueueHandler+QueueListener":
        setup.queue = queue.Queue()
        setup.listener = logging.handlers.QueueListener(
            setup.queue, setup.file_handler(target_cls), respect_handler_level=True
        )
        setup.listener.start()
        setup.logger.addHandler(logging.handlers.QueueHandler(setup.queue))
    elif kind == "safelog.FileHandler":
        setup.logger.addHandler(setup.file_handler(_safelog_twin(target_cls)))
    elif kind == QUEUED:
        setup.logger.addHandler(safelog.QueueHandler([setup.file_handler(target_cls)]))
    elif kind == QUEUED_SAFE:
        target = setup.file_handler(_safelog_twin(target_cls))
        setup.logger.addHandler(safelog.QueueHandler([target]))
    else:
        raise ValueError(kind)
    return setup


QUEUED = "safelog.QueueHandler->logging.FH"
QUEUED_SAFE = "safelog.QueueHandler->safelog.FH"
KINDS = [
    "floor: NullHandler",
    "logging.FileHandler",
    "safelog.FileHandler",
    "stdlib QueueHandler+QueueListener",
    QUEUED,
    QUEUED_SAFE,
]


def _safelog_twin(cls: type[logging.FileHandler]) -> type[logging.FileHandler]:
    """safelog.FileHandler, or a subclass of it that stalls as ``cls`` does."""
    if cls is StallingFileHandler:
        return StallingSafelogFileHandler
    return safelog.FileHandler


@contextmanager
def setups(
    directory: str, target_cls: type[logging.FileHandler] | None = None
) -> Iterator[dict[str, Setup]]:
    made = {kind: make(kind, directory, target_cls) for kind in KINDS}
    try:
        yield made
    finally:
        for setup in made.values():
            setup.close()


def burst_cost(setup: Setup, bursts: int, size: int = 1000) -> float:
    """Median seconds per call over ``bursts`` bursts of ``size`` calls."""
    info = setup.logger.info
    per_call = []
    for _ in range(bursts):
        started = time.perf_counter()
        for i in range(size):
            info(MESSAGE, i, 1.5, "w1")
        per_call.append((time.perf_counter() - started) / size)
        setup.drain()
    return statistics.median(per_call)


def sustained_cost(setup: Setup, calls: int) -> tuple[float, float]:
    """(wall, caller CPU) seconds per call over ``calls`` calls in a row."""
    info = setup.logger.info
    setup.drain()
    cpu_started, wall_started = time.thread_time(), time.perf_counter()
    for i in range(calls):
        info(MESSAGE, i, 1.5, "w1")
    wall = time.perf_counter() - wall_started
    cpu = time.thread_time() - cpu_started
    setup.drain()
    return wall / calls, cpu / calls


def throughput(setup: Setup, calls: int) -> float:
    """Records per second from the first call until all are on disk."""
    info = setup.logger.info
    setup.drain()
    started = time.perf_counter()
    for i in range(calls):
        info(MESSAGE, i, 1.5, "w1")
    setup.drain()
    return calls / (time.perf_counter() - started)


class Stalling(logging.Handler):
    """Mixed into a file handler: stalls 1 ms every 100 records (a slow
    disk)."""

    count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        if self.count % 100 == 0:
            time.sleep(0.001)
        super().emit(record)


class StallingFileHandler(Stalling, logging.FileHandler):
    """A logging.FileHandler that stalls 1 ms every 100 records."""


class StallingSafelogFileHandler(Stalling, safelog.FileHandler):
    """safelog.FileHandler that stalls 1 ms every 100 records."""


def _ratios(values: list[float]) -> str:
    burst, sustained, cpu = values
    return f"burst {burst:.2f}x, sustained {sustained:.2f}x, CPU {cpu:.2f}x"


def latencies(setup: Setup, calls: int) -> list[float]:
    info = setup.logger.info
    clock = time.perf_counter_ns
    found = []
    for i in range(calls):
        started = clock()
        info(MESSAGE, i, 1.5, "w1")
        found.append((clock() - started) / 1e3)
        if i % 1000 == 999:
            setup.drain()  # bursts of 1,000: the target keeps up on average
    setup.drain()
    return sorted(found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args()
    scale = 0.2 if args.quick else 1.0
    bursts, sustained, e2e, slow = (
        int(60 * scale) or 5,
        int(50_000 * scale),
        int(50_000 * scale),
        int(20_000 * scale),
    )
    print(f"Python {sys.version.split()[0]} on {sys.platform}, pid {os.getpid()}")
    with tempfile.TemporaryDirectory() as directory:
        with setups(directory) as made:
            for setup in made.values():  # warm up: writer threads, files
                burst_cost(setup, 2)
            print("\n1. Caller-side cost per log call (us)")
            print(
                f"   {'handler':36} {'burst':>8} {'sustained':>10} {'caller CPU':>11}"
            )
            # Round robin, medians: load from elsewhere on the machine hits
            # every kind alike.
            samples: dict[str, list[tuple[float, float, float]]] = {
                kind: [] for kind in made
            }
            rounds = 5
            for _ in range(rounds):
                for kind, setup in made.items():
                    burst = burst_cost(setup, max(1, bursts // rounds))
                    wall, cpu = sustained_cost(setup, sustained // rounds)
                    samples[kind].append((burst, wall, cpu))
            results = {}
            for kind, found in samples.items():
                burst, wall, cpu = (statistics.median(column) for column in zip(*found))
                results[kind] = (burst, wall, cpu)
                burst_us, wall_us, cpu_us = burst * 1e6, wall * 1e6, cpu * 1e6
                print(f"   {kind:36} {burst_us:8.2f} {wall_us:10.2f} {cpu_us:11.2f}")
            floor = results["floor: NullHandler"]
            for queued in (QUEUED, QUEUED_SAFE):
                ours = results[queued]
                print(f"   {queued}:")
                for other, target in (
                    ("logging.FileHandler", ">= 3x"),
                    ("stdlib QueueHandler+QueueListener", ">= 2x"),
                ):
                    whole = [them / me for them, me in zip(results[other], ours)]
                    above = [
                        (them - low) / (me - low) if me - low > 0.05e-6 else 0.0
                        for them, me, low in zip(results[other], ours, floor)
                    ]
                    print(
                        f"     {other} / it (target {target}): per call "
                        f"{_ratios(whole)}; above the floor {_ratios(above)}"
                    )
                ratios = [me / low for me, low in zip(ours, floor)]
                print(
                    f"     it / NullHandler floor (target <= 1.5x): {_ratios(ratios)}"
                )

            print("\n2. End-to-end throughput, all records on disk (records/s)")
            # Round robin, medians, as above: one run each would compare a
            # kind measured during a burst of outside load with one without.
            runs: dict[str, list[float]] = {kind: [] for kind in KINDS[1:]}
            for _ in range(rounds):
                for kind in KINDS[1:]:
                    runs[kind].append(throughput(made[kind], e2e))
            rates = {kind: statistics.median(found) for kind, found in runs.items()}
            for kind in KINDS[1:]:
                print(f"   {kind:36} {rates[kind]:12,.0f}")
            for queued in (QUEUED, QUEUED_SAFE):
                ratio = rates[queued] / rates["logging.FileHandler"]
                print(f"   {queued} / logging.FileHandler (target >= 1x): {ratio:.2f}x")

        print("\n3. Caller latency, target stalls 1 ms every 100 records (us)")
        print(f"   {'handler':36} {'p50':>8} {'p99':>8} {'max':>9}")
        p99 = {}
        with setups(directory, StallingFileHandler) as made:
            for kind in KINDS[1:]:
                delays = latencies(made[kind], slow)
                p99[kind] = delays[int(len(delays) * 0.99)]
                print(
                    f"   {kind:36} {delays[len(delays) // 2]:8.2f} "
                    f"{p99[kind]:8.2f} {delays[-1]:9.1f}"
                )
        for queued in (QUEUED, QUEUED_SAFE):
            ratio = p99["logging.FileHandler"] / p99[queued]
            print(f"   p99 logging.FileHandler / {queued}: {ratio:.1f}x")

        print("\n4. os.fork() in the parent, median (us)")
        forks = int(200 * scale) or 20
        time.sleep(0.1)  # let the threads joined above leave the OS thread list
        bare = fork_seconds(forks) * 1e6
        with setups(directory) as made:
            setup = made[QUEUED_SAFE]
            setup.logger.info("start the writer")
            setup.drain()

            def fork_with_idle_writer() -> float:
                took = []
                for _ in range(forks):
                    setup.logger.info("writer running again")  # restart it
                    setup.drain()
                    took.append(fork_seconds(1) * 1e6)
                return statistics.median(took)

            idle = fork_with_idle_writer()
        print(f"   no safelog handler: {bare:8.1f}")
        print(f"   idle safelog writer: {idle:8.1f}  (drains and stops the writer)")


if __name__ == "__main__":
    main()
