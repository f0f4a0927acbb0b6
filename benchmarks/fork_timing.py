"""Timing ``os.fork()`` as the parent sees it, shared by the benchmarks."""

from __future__ import annotations

import os
import statistics
import time


def fork_seconds(forks: int) -> float:
    """Median seconds an ``os.fork()`` call takes in the parent, at-fork
    hooks included; each child leaves at once."""
    timings = []
    for _ in range(forks):
        start = time.perf_counter()
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        timings.append(time.perf_counter() - start)
        os.waitpid(pid, 0)
    return statistics.median(timings)
