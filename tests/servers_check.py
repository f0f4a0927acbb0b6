"""What tests/test_servers.py needs beside the tests: the gate for the
server packages, a free port, bounded load over HTTP and the count of a log
file's lines (see :class:`Count`)."""

from __future__ import annotations

import collections
import dataclasses
import importlib.util
import os
import queue
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

#: A line the app or a scenario wrote whole; anything else is torn.
_LINE = re.compile(r"(tick (\d+) (\d+) x{60}|(request|task) (\S+) \d+)")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false")


def _default_python() -> str | None:
    """The ``major.minor`` of ``python3`` on PATH, or None."""
    try:
        found = subprocess.run(
            ["python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return found.stdout.strip()


DEFAULT_PYTHON = _default_python()
THIS_PYTHON = "{}.{}".format(*sys.version_info[:2])

#: The server tests are slow: they run on the default python3 only.
default_python_only = pytest.mark.skipif(
    DEFAULT_PYTHON != THIS_PYTHON,
    reason=f"server tests run on the default python3 ({DEFAULT_PYTHON}) only; "
    f"this is Python {THIS_PYTHON}",
)


def need_module(module: str, package: str | None = None) -> None:
    """Skip unless ``module`` (of the distribution ``package``) can be
    imported; in CI (``CI`` set) fail instead, so that CI proves the server
    ran."""
    if importlib.util.find_spec(module) is not None:
        return
    reason = (
        f"{package or module} is not installed (pip install -e '.[test,servers]'; "
        "scripts/test does, for the default python3)"
    )
    if in_ci():
        pytest.fail(f"CI must run the server tests: {reason}", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until_serving(
    port: int, server: subprocess.Popen[bytes], timeout: float
) -> bool:
    """Whether ``GET /`` on ``port`` answers within ``timeout`` seconds,
    ``server`` running meanwhile."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and server.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2):
                return True
        except OSError:
            time.sleep(0.1)
    return False


@dataclasses.dataclass
class Load:
    """What bounded load over HTTP got: the ids answered, the ids that failed
    (timed out, reset) with why, and the ids never sent (budget spent)."""

    answered: list[str]
    failed: dict[str, str]
    not_sent: int


def drive(
    port: int, requests: int, *, clients: int, budget: float, patience: float = 5.0
) -> Load:
    """Send ``GET /?id=<n>`` for n below ``requests`` from ``clients``
    threads, each request waiting at most ``patience`` seconds, none started
    after ``budget`` seconds."""
    ids: queue.SimpleQueue[str] = queue.SimpleQueue()
    for number in range(requests):
        ids.put(str(number))
    answered: list[str] = []
    failed: dict[str, str] = {}
    deadline = time.monotonic() + budget

    def client() -> None:
        while time.monotonic() < deadline:
            try:
                request_id = ids.get_nowait()
            except queue.Empty:
                return
            url = f"http://127.0.0.1:{port}/?id={request_id}"
            try:
                with urllib.request.urlopen(url, timeout=patience) as response:
                    response.read()
                answered.append(request_id)
            except OSError as error:
                failed[request_id] = type(error).__name__

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return Load(answered, failed, ids.qsize())


@dataclasses.dataclass
class Count:
    """A log file's lines, counted: ``lost`` are answered requests (or
    finished tasks) with no line and tick lines missing below the last one
    of their thread; ``duplicated`` are lines written more than once;
    ``torn`` are lines that are not whole."""

    lines: int
    ticks: int
    lost: list[str]
    duplicated: list[str]
    torn: list[str]

    def summary(self) -> dict[str, int]:
        return {
            "lost": len(self.lost),
            "duplicated": len(self.duplicated),
            "torn": len(self.torn),
        }


def count(text: str, done: list[str]) -> Count:
    """Count the lines of ``text`` against the ids in ``done`` (requests
    answered or tasks finished)."""
    ticks: collections.Counter[tuple[int, int]] = collections.Counter()
    ids: collections.Counter[str] = collections.Counter()
    torn = []
    lines = text.splitlines()
    for line in lines:
        whole = _LINE.fullmatch(line)
        if whole is None:
            torn.append(line[:120])
        elif whole.group(2) is not None:
            ticks[int(whole.group(2)), int(whole.group(3))] += 1
        else:
            ids[whole.group(5)] += 1
    lost = [f"request {request_id}" for request_id in done if ids[request_id] == 0]
    last: dict[int, int] = {}
    for thread, sequence in ticks:
        last[thread] = max(sequence, last.get(thread, -1))
    for thread, top in sorted(last.items()):
        lost.extend(
            f"tick {thread} {sequence}"
            for sequence in range(top)
            if (thread, sequence) not in ticks
        )
    duplicated = [f"{key} x{times}" for key, times in ids.items() if times > 1]
    duplicated += [
        f"tick {key[0]} {key[1]} x{times}" for key, times in ticks.items() if times > 1
    ]
    return Count(len(lines), sum(ticks.values()), lost, duplicated, torn)
