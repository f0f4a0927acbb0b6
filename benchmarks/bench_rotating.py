"""Throughput of safelog.RotatingFileHandler against
logging.handlers.RotatingFileHandler and concurrent-log-handler's
ConcurrentRotatingFileHandler, in one process and in several.

concurrent-log-handler is measured only when it can be imported (install it
for the benchmark, never as a dependency of safelog).  Every number is a
ratio measured in this one run, the handlers interleaved round by round so
that a busy machine slows them alike:

    python benchmarks/bench_rotating.py [--records N] [--rounds R]

The multi-process figures of the standard handler are shown for scale only:
it loses records when several processes rotate one file.
"""

from __future__ import annotations

import argparse
import gc
import logging
import logging.handlers
import os
import sys
import tempfile
import time
from collections.abc import Callable

try:
    import safelog
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))
    import safelog

MakeHandler = Callable[[str, int], logging.Handler]

FORMAT = "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s"
BACKUPS = 3


def stdlib_handler(path: str, max_bytes: int) -> logging.Handler:
    return logging.handlers.RotatingFileHandler(
        path, maxBytes=max_bytes, backupCount=BACKUPS
    )


def safelog_handler(path: str, max_bytes: int) -> logging.Handler:
    return safelog.RotatingFileHandler(path, maxBytes=max_bytes, backupCount=BACKUPS)


def contenders() -> dict[str, MakeHandler]:
    """The handlers to measure, by name; concurrent-log-handler if present."""
    handlers: dict[str, MakeHandler] = {
        "logging.handlers.RotatingFileHandler": stdlib_handler,
        "safelog.RotatingFileHandler": safelog_handler,
    }
    try:
        from concurrent_log_handler import ConcurrentRotatingFileHandler
    except ImportError:
        print("concurrent-log-handler is not importable: skipped")
        return handlers

    def concurrent_handler(path: str, max_bytes: int) -> logging.Handler:
        return ConcurrentRotatingFileHandler(
            path, maxBytes=max_bytes, backupCount=BACKUPS
        )

    handlers["ConcurrentRotatingFileHandler"] = concurrent_handler
    return handlers


def log_records(make: MakeHandler, path: str, max_bytes: int, records: int) -> None:
    handler = make(path, max_bytes)
    handler.setFormatter(logging.Formatter(FORMAT))
    logger = logging.Logger("bench")
    logger.addHandler(handler)
    for number in range(records):
        logger.info("record %d of the rotation benchmark", number)
    handler.close()


def records_per_second(
    make: MakeHandler, max_bytes: int, records: int, processes: int
) -> float:
    """Records per second, all processes together, on a fresh file."""
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "bench.log")
        gc.collect()
        start = time.perf_counter()
        if processes == 1:
            log_records(make, path, max_bytes, records)
        else:
            children = []
            for _ in range(processes):
                pid = os.fork()
                if pid == 0:
                    try:
                        log_records(make, path, max_bytes, records // processes)
                    finally:
                        os._exit(0)
                children.append(pid)
            for pid in children:
                os.waitpid(pid, 0)
        elapsed = time.perf_counter() - start
    return records / elapsed


def measure(
    handlers: dict[str, MakeHandler],
    max_bytes: int,
    records: int,
    processes: int,
    rounds: int,
) -> dict[str, float]:
    """Best rate of each handler over ``rounds`` interleaved rounds."""
    rates: dict[str, list[float]] = {name: [] for name in handlers}
    for _ in range(rounds):
        for name, make in handlers.items():
            rates[name].append(records_per_second(make, max_bytes, records, processes))
    return {name: max(values) for name, values in rates.items()}


def report(title: str, best: dict[str, float]) -> None:
    print(title)
    for name, rate in best.items():
        print(f"  {name:38} {rate:12,.0f} records/s")
    ours = best["safelog.RotatingFileHandler"]
    stdlib = best["logging.handlers.RotatingFileHandler"]
    print(f"  ratio safelog/stdlib                   {ours / stdlib:12.2f}")
    if "ConcurrentRotatingFileHandler" in best:
        theirs = best["ConcurrentRotatingFileHandler"]
        print(f"  ratio safelog/concurrent-log-handler   {ours / theirs:12.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--processes", type=int, default=4)
    options = parser.parse_args()
    handlers = contenders()
    print(f"Python {sys.version.split()[0]}, best of {options.rounds} rounds")
    for max_bytes, label in ((10 * 1024 * 1024, "10 MiB"), (64 * 1024, "64 KiB")):
        best = measure(handlers, max_bytes, options.records, 1, options.rounds)
        report(
            f"1 process, maxBytes {label}, {options.records} records"
            " (target: safelog/stdlib 0.80 or more, above concurrent-log-handler)",
            best,
        )
    if hasattr(os, "fork"):
        # The standard handler's rollovers race here and report failed
        # renames through handleError; keep them out of the table.
        logging.raiseExceptions = False
        best = measure(
            handlers,
            64 * 1024,
            options.records,
            options.processes,
            options.rounds,
        )
        report(
            f"{options.processes} processes, maxBytes 64 KiB,"
            f" {options.records} records in all (the stdlib loses records here)",
            best,
        )


if __name__ == "__main__":
    main()
