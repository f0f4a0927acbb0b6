"""The network handlers while their receiver is away: every record either
arrives or is counted in a report, one report per outage.

Each scenario runs in a child interpreter with a hard deadline.  Its
receiver (:class:`Receiver`, imported from this module) is a loopback TCP
server that can stop, closing every connection as a restarting collector
does, and start again on the same port.  Reports are what ``handleError``
prints on stderr (``logging.raiseExceptions`` is true, the default).
"""

from __future__ import annotations

import contextlib
import json
import pathlib
import re
import socket
import textwrap
import threading
import time

import pytest

from scenario import run_ok

TESTS_DIR = pathlib.Path(__file__).parent

_DROPPED = re.compile(r"RecordsDropped: .* dropped (\d+) record\(s\)")


class Receiver:
    """A loopback TCP server on a fixed port that keeps every byte each
    connection sent, and can stop (closing every connection) and start
    again on the same port."""

    def __init__(self, listen_backlog: int = 16) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port: int = probe.getsockname()[1]
        self.backlog = listen_backlog
        self.received = bytearray()
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._connections: list[socket.socket] = []
        self._threads: list[threading.Thread] = []

    def start(self, accepting: threading.Event | None = None) -> None:
        """Listen; accept once ``accepting`` is set (at once without one)."""
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(self.backlog)
        self._listener = listener
        acceptor = threading.Thread(
            target=self._accept, args=(listener, accepting), daemon=True
        )
        self._threads.append(acceptor)
        acceptor.start()

    def stop(self) -> None:
        """Close the listener and every connection, after reading what each
        has sent so far."""
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.shutdown(socket.SHUT_RDWR)  # wakes the acceptor
            listener.close()
        for connection in self._connections:
            # Wakes its reader; fails if the sender closed it first.
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(10)
        for connection in self._connections:
            connection.close()
        self._connections.clear()
        self._threads.clear()

    def wait_quiet(self, quiet: float, limit: float) -> None:
        """Wait until nothing has arrived for ``quiet`` seconds, at most
        ``limit`` seconds in all."""
        deadline = time.monotonic() + limit
        seen, since = len(self.received), time.monotonic()
        while time.monotonic() < min(deadline, since + quiet):
            time.sleep(0.05)
            if len(self.received) != seen:
                seen, since = len(self.received), time.monotonic()

    def messages(self) -> list[str]:
        """The NUL- or pickle-framed records received, as their text."""
        return [part.decode() for part in bytes(self.received).split(b"\0") if part]

    def _accept(
        self, listener: socket.socket, accepting: threading.Event | None
    ) -> None:
        if accepting is not None:
            accepting.wait()
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            self._connections.append(connection)
            reader = threading.Thread(target=self._read, args=(connection,))
            self._threads.append(reader)
            reader.start()

    def _read(self, connection: socket.socket) -> None:
        while True:
            try:
                chunk = connection.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            with self._lock:
                self.received += chunk


# Each record is "<label>/<n>" with a NUL after it, for either handler.
_PRELUDE = """
import json, logging, logging.handlers, pickle, socket, sys, time
import safelog
from test_network_outage import Receiver

module = safelog if sys.argv[1] == "safelog" else logging.handlers
kind = sys.argv[2]
receiver = Receiver()

def make_handler():
    if kind == "SocketHandler":
        handler = module.SocketHandler("127.0.0.1", receiver.port)
        # The record's text between NULs, in place of a pickle.
        handler.makePickle = lambda record: b"\\0%s\\0" % record.getMessage().encode()
    else:
        handler = module.SysLogHandler(
            ("127.0.0.1", receiver.port), socktype=socket.SOCK_STREAM)
        handler.setFormatter(logging.Formatter("%(message)s"))
    return handler

logger = logging.getLogger("outage")
logger.propagate = False
logged = []
def log(label, count):
    for n in range(count):
        logged.append(f"{label}/{n}")
        logger.warning(f"{label}/{n}")
        time.sleep(0.02)

def finish(handler, quiet=0.2):
    # Close (which reports what is not reported yet), let the receiver
    # read the last bytes, and print what was logged and what arrived.
    handler.close()
    receiver.wait_quiet(quiet, limit=quiet + 10)
    receiver.stop()
    print(json.dumps({"logged": logged, "received": receiver.messages()}))
"""


def _run(code: str, module: str, kind: str) -> tuple[list[str], list[str], list[int]]:
    """Run a scenario; return what it logged, what arrived (its syslog
    header stripped) and the counts in each report of dropped records."""
    outcome = run_ok(
        textwrap.dedent(_PRELUDE) + textwrap.dedent(code),
        cwd=TESTS_DIR,
        args=(module, kind),
        timeout=60.0,
    )
    found = json.loads(outcome.stdout.strip().splitlines()[-1])
    arrived = [re.sub(r"^<\d+>", "", text) for text in found["received"]]
    reports = [int(count) for count in _DROPPED.findall(outcome.stderr)]
    if module != "safelog":
        reports += [0] * outcome.stderr.count("--- Logging error ---")
    return found["logged"], arrived, reports


# The collector restarts: up before the handler, away for a while, back.
RESTART = """
receiver.start()
handler = make_handler()
logger.addHandler(handler)
log("before", 5)
receiver.stop()
time.sleep(0.1)
log("away", 5)
receiver.start()
time.sleep(1.1)  # SocketHandler's back-off after a refused connect: 1 s
log("back", 5)
finish(handler)
"""


@pytest.mark.parametrize("kind", ["SocketHandler", "SysLogHandler"])
def test_collector_restart_every_record_arrives_or_is_reported(kind: str) -> None:
    """Records logged while the collector is away are counted, and reported
    in one report once a record gets through; every record after the
    restart arrives (the standard SysLogHandler never reconnects)."""
    logged, arrived, reports = _run(RESTART, "safelog", kind)
    assert len(arrived) == len(set(arrived)) and set(arrived) <= set(logged)
    assert [f"back/{n}" for n in range(5)] == arrived[-5:]
    assert 1 == len(reports)
    assert len(logged) == len(arrived) + sum(reports)


@pytest.mark.parametrize("kind", ["SocketHandler", "SysLogHandler"])
def test_stdlib_loses_the_restart_without_a_count_comparison(kind: str) -> None:
    """The comparison: the standard handlers lose records of the outage
    with no report (SocketHandler), or report each failed send and then
    lose every later record (SysLogHandler, which never reconnects)."""
    logged, arrived, reports = _run(RESTART, "stdlib", kind)
    unaccounted = len(logged) - len(arrived) - sum(reports)
    if kind == "SocketHandler":
        assert not reports and unaccounted >= 5
    else:
        assert not [text for text in arrived if text.startswith("back/")]


# The collector is down when the handler starts, and comes up later.
DOWN_AT_START = """
handler = make_handler()
logger.addHandler(handler)
log("down", 5)
receiver.start()
time.sleep(1.1)  # SocketHandler's back-off after a refused connect: 1 s
log("up", 5)
finish(handler)
"""


def test_socket_handler_down_at_start_reports_the_count() -> None:
    """SocketHandler with its collector down at start: the 5 records are
    reported in one report with their count once a record gets through."""
    logged, arrived, reports = _run(DOWN_AT_START, "safelog", "SocketHandler")
    assert [f"up/{n}" for n in range(5)] == arrived
    assert [5] == reports and 10 == len(logged)


def test_stdlib_socket_handler_down_at_start_says_nothing_comparison() -> None:
    logged, arrived, reports = _run(DOWN_AT_START, "stdlib", "SocketHandler")
    assert [] == reports
    assert len(arrived) < len(logged)


# Forked children whose own connect times out: the collector's backlog is
# full and it accepts nothing for 2 s (a busy collector).  Each
# multiprocessing child reports its drops at exit.
SLOW_ACCEPT = """
import multiprocessing, threading
receiver = Receiver(listen_backlog=1)
accepting = threading.Event()
receiver.start(accepting)
handler = make_handler()
logger.addHandler(handler)
log("parent", 1)

def child(number):
    for n in range(3):
        logger.warning(f"child{number}/{n}")

context = multiprocessing.get_context("fork")
children = [context.Process(target=child, args=(number,)) for number in range(6)]
for process in children:
    process.start()
threading.Timer(2.0, accepting.set).start()
for process in children:
    process.join(30)
logged += [f"child{number}/{n}" for number in range(6) for n in range(3)]
# A connection the full backlog held half open completes on a SYN-ACK
# resent 1, 2 or 4 s later: wait for it.
finish(handler, quiet=5.0)
"""


def test_children_whose_connect_times_out_report_their_drops() -> None:
    """Every child record arrives or is counted in its child's report."""
    logged, arrived, reports = _run(SLOW_ACCEPT, "safelog", "SocketHandler")
    assert len(arrived) == len(set(arrived)) and set(arrived) <= set(logged)
    assert len(logged) == len(arrived) + sum(reports)
