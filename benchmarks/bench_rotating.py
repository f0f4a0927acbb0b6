"""Throughput of safelog.RotatingFileHandler against
logging.handlers.RotatingFileHandler and concurrent-log-handler's
ConcurrentRotatingFileHandler, in one process and in several.

concurrent-log-handler is measured only when it can be imported (install it
for the benchmark, never as a dependency of safelog).  Every number is a
ratio measured in this one run, the handlers interleaved round by round so
that a busy machine slows them alike:

    python benchmarks/bench_rotating.py [--records N] [--rounds R]
        [--processes P] [--many-backups-records M]

Two families of cases: ``backupCount`` 3 with large files, where the cost
per record dominates, and ``backupCount`` 2000 with 5 KiB files, where a
rollover comes every few dozen records and its cost dominates (the setting
of concurrent-log-handler's own stress test, in which a rollover that
looks at every backup number up to ``backupCount`` is slow).

The multi-process figures of the standard handler are shown for scale only:
it loses records when several processes rotate one file.
"""

from __future__ import annotations

import argparse
import dataclasses
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

# (path, maxBytes, backupCount) -> handler
MakeHandler = Callable[[str, int, int], logging.Handler]

FORMAT = "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s"
FEW_BACKUPS = 3
MANY_BACKUPS = 2000


def stdlib_handler(path: str, max_bytes: int, backups: int) -> logging.Handler:
    return logging.handlers.RotatingFileHandler(
        path, maxBytes=max_bytes, backupCount=backups
    )


def safelog_handler(path: str, max_bytes: int, backups: int) -> logging.Handler:
    return safelog.RotatingFileHandler(path, maxBytes=max_bytes, backupCount=backups)


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

    def concurrent_handler(path: str, max_bytes: int, backups: int) -> logging.Handler:
        return ConcurrentRotatingFileHandler(
            path, maxBytes=max_bytes, backupCount=backups
        )

    handlers["ConcurrentRotatingFileHandler"] = concurrent_handler
    return handlers


@dataclasses.dataclass(frozen=True)
class Case:
    """One setting, the same for every handler."""

    max_bytes: int
    backups: int
    records: int  # in all, split between the processes
    processes: int


def log_records(make: MakeHandler, path: str, case: Case, records: int) -> None:
    handler = make(path, case.max_bytes, case.backups)
    handler.setFormatter(logging.Formatter(FORMAT))
    logger = logging.Logger("bench")
    logger.addHandler(handler)
    for number in range(records):
        logger.info("record %d of the rotation benchmark", number)
    handler.close()


def records_per_second(make: MakeHandler, case: Case) -> float:
    """Records per second, all processes together, on a fresh file in a
    fresh directory (so every run starts with no backups)."""
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "bench.log")
        gc.collect()
        start = time.perf_counter()
        if case.processes == 1:
            log_records(make, path, case, case.records)
        else:
            children = []
            for _ in range(case.processes):
                pid = os.fork()
                if pid == 0:
                    try:
                        log_records(make, path, case, case.records // case.processes)
                    finally:
                        os._exit(0)
                children.append(pid)
            for pid in children:
                os.waitpid(pid, 0)
        elapsed = time.perf_counter() - start
    return case.records / elapsed


def measure(
    handlers: dict[str, MakeHandler], case: Case, rounds: int
) -> dict[str, float]:
    """Best rate of each handler over ``rounds`` interleaved rounds."""
    rates: dict[str, list[float]] = {name: [] for name in handlers}
    for _ in range(rounds):
        for name, make in handlers.items():
            rates[name].append(records_per_second(make, case))
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
    parser.add_argument("--many-backups-records", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--processes", type=int, default=4)
    options = parser.parse_args()
    handlers = contenders()
    print(f"Python {sys.version.split()[0]}, best of {options.rounds} rounds")
    target = "(target: safelog/stdlib 0.80 or more, above concurrent-log-handler)"
    several = options.processes if hasattr(os, "fork") else 1
    cases = [
        (f"maxBytes 10 MiB, backupCount {FEW_BACKUPS}", 10 * 1024 * 1024, 1),
        (f"maxBytes 64 KiB, backupCount {FEW_BACKUPS}", 64 * 1024, 1),
        (f"maxBytes 64 KiB, backupCount {FEW_BACKUPS}", 64 * 1024, several),
    ]
    for label, max_bytes, processes in cases:
        case = Case(max_bytes, FEW_BACKUPS, options.records, processes)
        run(handlers, label, case, options.rounds, target)
    for processes in sorted({1, several}):
        case = Case(5 * 1024, MANY_BACKUPS, options.many_backups_records, processes)
        label = f"maxBytes 5 KiB, backupCount {MANY_BACKUPS}"
        run(handlers, label, case, options.rounds, target)


def run(
    handlers: dict[str, MakeHandler],
    label: str,
    case: Case,
    rounds: int,
    target: str,
) -> None:
    if case.processes == 1:
        title = f"1 process, {label}, {case.records} records {target}"
    else:
        # The standard handler's rollovers race here and report failed
        # renames through handleError; keep them out of the table.
        logging.raiseExceptions = False
        title = (
            f"{case.processes} processes, {label}, {case.records} records in all"
            " (the stdlib loses records here)"
        )
    report(title, measure(handlers, case, rounds))


if __name__ == "__main__":
    main()
