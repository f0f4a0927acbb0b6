"""Throughput of safelog.FileHandler against logging.FileHandler, the cost
safelog adds to ``os.fork()``, and the cost of noticing a fork that ran no
at-fork hook (one ``os.getpid()`` per record).

Standard library only.  Every number is a ratio measured in this one run, the
two sides interleaved round by round so that a busy machine slows both alike:

    python benchmarks/bench_handlers.py [--records N] [--rounds R]
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import statistics
import sys
import tempfile
import threading
import time
import timeit
from collections.abc import Callable

try:
    import safelog
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))
    import safelog

from fork_timing import fork_seconds

FORMAT = "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s"


def records_per_second(
    make_handler: Callable[[str], logging.Handler], records: int, threads: int = 1
) -> float:
    """Log ``records`` records, from ``threads`` threads at once, through a
    fresh handler on a fresh file."""
    with tempfile.TemporaryDirectory() as directory:
        handler = make_handler(os.path.join(directory, "bench.log"))
        handler.setFormatter(logging.Formatter(FORMAT))
        logger = logging.Logger("bench")
        logger.addHandler(handler)
        start_together = threading.Barrier(threads + 1)

        def log() -> None:
            start_together.wait()
            for number in range(records // threads):
                logger.info("record %d of the benchmark", number)

        workers = [threading.Thread(target=log) for _ in range(threads)]
        for worker in workers:
            worker.start()
        gc.collect()
        start_together.wait()
        start = time.perf_counter()
        for worker in workers:
            worker.join()
        elapsed = time.perf_counter() - start
        handler.close()
    return records / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--forks", type=int, default=200)
    options = parser.parse_args()

    print(
        f"Python {sys.version.split()[0]}, {options.records} records,"
        f" best of {options.rounds}"
    )
    for threads in (1, 4):
        stdlib_rates, safelog_rates = [], []
        for _ in range(options.rounds):
            stdlib_rates.append(
                records_per_second(logging.FileHandler, options.records, threads)
            )
            safelog_rates.append(
                records_per_second(safelog.FileHandler, options.records, threads)
            )
        stdlib_rate, safelog_rate = max(stdlib_rates), max(safelog_rates)
        if threads == 1:
            record_seconds = 1 / safelog_rate
        print(f"{threads} thread(s)")
        print(f"  logging.FileHandler  {stdlib_rate:12,.0f} records/s")
        print(f"  safelog.FileHandler  {safelog_rate:12,.0f} records/s")
        print(
            f"  ratio safelog/stdlib {safelog_rate / stdlib_rate:12.2f}"
            "   (target: 1.00 or more)"
        )

    # Every safelog handler compares os.getpid() with the pid it recorded
    # before it takes its lock: the check for a fork that ran no hook.
    getpid_seconds = (
        min(timeit.repeat(os.getpid, number=100_000, repeat=options.rounds)) / 100_000
    )
    print("noticing a fork that ran no at-fork hook: one os.getpid() per record")
    print(f"  os.getpid()          {getpid_seconds * 1e9:9.0f} ns")
    print(f"  safelog.FileHandler  {record_seconds * 1e9:9.0f} ns per record")
    print(
        f"  share of a record    {getpid_seconds / record_seconds:9.1%}"
        "   (target: under 2%)"
    )

    if not hasattr(os, "fork"):
        return
    bare, with_handlers = [], []
    with tempfile.TemporaryDirectory() as directory:
        for _ in range(options.rounds):
            bare.append(fork_seconds(options.forks // options.rounds))
            idle = [
                safelog.FileHandler(os.path.join(directory, f"idle{n}.log"))
                for n in range(10)
            ]
            with_handlers.append(fork_seconds(options.forks // options.rounds))
            for handler in idle:
                handler.close()
            del idle
            gc.collect()
    bare_us = statistics.median(bare) * 1e6
    handlers_us = statistics.median(with_handlers) * 1e6
    print(f"os.fork(), median of {options.forks} in the parent")
    print(f"  no safelog handler   {bare_us:9.1f} us")
    print(f"  10 idle handlers     {handlers_us:9.1f} us")
    print(f"  added cost           {handlers_us - bare_us:9.1f} us")


if __name__ == "__main__":
    main()
