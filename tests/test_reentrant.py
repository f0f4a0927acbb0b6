"""Records logged re-entrantly, into every safelog handler: a signal handler
that logs while the interrupted thread is writing a record through the same
handler, and a formatter that logs.  Each such record is written whole, once,
right after the record in progress; the standard handlers lose some.

Each scenario runs in a child interpreter with a hard deadline and prints
what reached the handler's destination as JSON.
"""

from __future__ import annotations

import json
import logging
import sys

import pytest

import safelog
from scenario import run_ok

# The scenario: SIGALRM every 0.5 ms logs "signal N" while the main thread
# logs "loop N"; then count what arrived.  `make_handler()` and `arrived()`
# (the messages at the destination) come from the handler's set-up below.
SIGNAL_SCENARIO = """
import glob, itertools, json, logging, logging.handlers, os, signal, socket
import struct, sys, threading, time, pickle
import safelog
WORKDIR, LOOPS = sys.argv[1], int(sys.argv[2])
PATH = os.path.join(WORKDIR, "out.log")
{setup}
handler = make_handler()
errors = []
def count_error(record):
    errors.append(str(sys.exc_info()[1]))
handler.handleError = count_error
log = logging.getLogger("reentrant"); log.addHandler(handler); log.propagate = False
numbers = itertools.count()  # next() is atomic: a handler may interrupt one
def on_alarm(signum, frame):
    log.warning("signal %d", next(numbers))
signal.signal(signal.SIGALRM, on_alarm)
signal.setitimer(signal.ITIMER_REAL, 0.0005, 0.0005)
for i in range(LOOPS):
    log.warning("loop %d", i)
signal.setitimer(signal.ITIMER_REAL, 0)
signal.signal(signal.SIGALRM, signal.SIG_IGN)
signals = next(numbers)
handler.close()
messages = arrived()
expected = {{f"loop {{i}}" for i in range(LOOPS)}}
expected |= {{f"signal {{i}}" for i in range(signals)}}
print(json.dumps({{
    "signals": signals,
    "lost": len(expected - set(messages)),
    "unexpected": sorted(set(messages) - expected)[:5],
    "duplicated": len(messages) - len(set(messages)),
    "errors": errors[:3],
}}))
"""

FILES = """
def arrived():
    lines = []
    for name in glob.glob(PATH + "*"):
        if not name.endswith(".lock"):
            with open(name) as file:
                lines += file.read().splitlines()
    return lines
"""

# A collector on a loopback port, in a thread of the scenario's interpreter.
TCP_COLLECTOR = """
server = socket.create_server(("127.0.0.1", 0))
port = server.getsockname()[1]
received = bytearray()
def collect():
    connection, _ = server.accept()
    with connection:
        while True:
            data = connection.recv(65536)
            if not data:
                return
            received.extend(data)
collector = threading.Thread(target=collect)
collector.start()
def frames():
    collector.join(10)
    offset, found = 0, []
    while offset < len(received):
        (length,) = struct.unpack(">L", received[offset:offset + 4])
        found.append(pickle.loads(bytes(received[offset + 4:offset + 4 + length])))
        offset += 4 + length
    return found
def arrived():
    return [frame["msg"] for frame in frames()]
"""

UDP_COLLECTOR = """
receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 24)
receiver.bind(("127.0.0.1", 0))
port = receiver.getsockname()[1]
datagrams = []
stop = threading.Event()
def collect():
    receiver.settimeout(0.2)
    while True:
        try:
            datagrams.append(receiver.recv(65536))
        except socket.timeout:  # quiet for 0.2 s: all sent ones are in
            if stop.is_set():
                return
collector = threading.Thread(target=collect)
collector.start()
def received():
    stop.set()
    collector.join(10)
    return datagrams
"""

SETUPS = {
    "StreamHandler": FILES
    + """
def make_handler():
    # A buffered text file: the BufferedWriter refuses a re-entrant write.
    return {cls}(open(PATH, "w", encoding="utf-8"))
""",
    "FileHandler": FILES + "\ndef make_handler():\n    return {cls}(PATH)\n",
    "WatchedFileHandler": FILES + "\ndef make_handler():\n    return {cls}(PATH)\n",
    "RotatingFileHandler": FILES
    + """
def make_handler():
    return {cls}(PATH, maxBytes=64 * 1024, backupCount=999)
""",
    "TimedRotatingFileHandler": FILES
    + """
def make_handler():
    return {cls}(PATH, when="S", interval=1, backupCount=999)
""",
    "SocketHandler": TCP_COLLECTOR
    + """
def make_handler():
    return {cls}("127.0.0.1", port)
""",
    "DatagramHandler": UDP_COLLECTOR
    + """
def make_handler():
    return {cls}("127.0.0.1", port)
def arrived():
    return [pickle.loads(datagram[4:])["msg"] for datagram in received()]
""",
    "SysLogHandler": UDP_COLLECTOR
    + """
def make_handler():
    return {cls}(("127.0.0.1", port))
def arrived():
    # "<12>signal 3\\x00": priority, message, NUL
    return [datagram.decode()[4:].rstrip("\\x00") for datagram in received()]
""",
}
# Loops per scenario: the network ones write slower, and UDP must not
# overflow the collector's buffer.
LOOPS = {"SocketHandler": 5000, "DatagramHandler": 3000, "SysLogHandler": 3000}

STDLIB_CLASS = {
    "StreamHandler": "logging.StreamHandler",
    "FileHandler": "logging.FileHandler",
    "WatchedFileHandler": "logging.handlers.WatchedFileHandler",
    "RotatingFileHandler": "logging.handlers.RotatingFileHandler",
    "TimedRotatingFileHandler": "logging.handlers.TimedRotatingFileHandler",
    "SocketHandler": "logging.handlers.SocketHandler",
    "DatagramHandler": "logging.handlers.DatagramHandler",
    "SysLogHandler": "logging.handlers.SysLogHandler",
}


def signal_scenario(kind: str, cls: str, workdir: str) -> dict[str, object]:
    code = SIGNAL_SCENARIO.format(setup=SETUPS[kind].format(cls=cls))
    loops = str(LOOPS.get(kind, 10000))
    outcome = run_ok(code, args=(workdir, loops), timeout=60)
    return json.loads(outcome.stdout.splitlines()[-1])  # type: ignore[no-any-return]


@pytest.mark.parametrize("kind", sorted(SETUPS))
def test_signal_handler_records_written_whole_once(kind: str, tmp_path: object) -> None:
    """A signal handler that logs while the main thread logs through the same
    safelog handler: every record of both arrives, once, whole, and nothing
    is reported as failed."""
    found = signal_scenario(kind, f"safelog.{kind}", str(tmp_path))
    assert found["signals"] > 0
    assert {"lost": 0, "unexpected": [], "duplicated": 0, "errors": []} == {
        key: found[key] for key in ("lost", "unexpected", "duplicated", "errors")
    }


@pytest.mark.parametrize("kind", ["StreamHandler", "RotatingFileHandler"])
def test_comparison_stdlib_loses_signal_handler_records(
    kind: str, tmp_path: object
) -> None:
    """COMPARISON: the standard handler in the same scenario loses records
    ("reentrant call" from the buffered stream)."""
    found = signal_scenario(kind, STDLIB_CLASS[kind], str(tmp_path))
    assert found["lost"] > 0


class _Collecting(safelog.StreamHandler):
    """A StreamHandler on a StringIO that records what handleError saw."""

    def __init__(self) -> None:
        import io

        super().__init__(io.StringIO())
        self.errors: list[BaseException | None] = []

    def handleError(self, record: logging.LogRecord) -> None:
        self.errors.append(sys.exc_info()[1])


def test_record_logged_by_formatter_follows_its_record() -> None:
    """A formatter that logs through its own handler: the inner record is
    written whole, right after the one being formatted."""
    handler = _Collecting()
    log = logging.getLogger("test_reentrant.formatter")
    log.propagate = False

    class Chatty(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            if record.getMessage() == "outer":
                log.warning("inner")
            return super().format(record)

    handler.setFormatter(Chatty("%(message)s"))
    log.addHandler(handler)
    try:
        log.warning("outer")
        log.warning("after")
    finally:
        log.removeHandler(handler)
    assert "outer\ninner\nafter\n" == handler.stream.getvalue()
    assert [] == handler.errors


def test_endless_reentrant_logging_ends_reported() -> None:
    """A formatter that logs on every record it formats: the call ends
    (the standard handlers recurse until RecursionError), the records past
    the bound are reported to handleError as RecursionError."""
    handler = _Collecting()
    log = logging.getLogger("test_reentrant.endless")
    log.propagate = False

    class Endless(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            log.warning("again")
            return super().format(record)

    handler.setFormatter(Endless("%(message)s"))
    log.addHandler(handler)
    try:
        log.warning("first")
    finally:
        log.removeHandler(handler)
    lines = handler.stream.getvalue().splitlines()
    assert ["first"] + ["again"] * 1000 == lines
    assert 1 == len(handler.errors)
    assert isinstance(handler.errors[0], RecursionError)


# A forked child's QueueHandler delivers inline, on the logging thread: a
# record of 200 KB goes to a full pipe in pieces, and SIGALRM arrives between
# two of them.  The signal handler logs and calls safelog.flush(), as a
# SIGTERM handler does before exiting; that delivers its record through the
# batch path (_handle_batch) on the thread that is writing the long one.
SIGNAL_FLUSH_IN_LONG_RECORD = """
import json, logging, os, signal, time
import safelog
read_end, write_end = os.pipe()
handler = safelog.StreamHandler(safelog.DescriptorStream(write_end, encoding="utf-8"))
handler.setFormatter(logging.Formatter("%(message)s"))
queued = safelog.QueueHandler(handler)
log = logging.getLogger("long"); log.addHandler(queued); log.propagate = False
pid = os.fork()
if pid == 0:
    try:
        os.close(read_end)
        def on_alarm(signum, frame):
            log.warning("SIGNAL-RECORD")
            safelog.flush()
        signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        log.warning("LONG-START " + "x" * 200_000 + " LONG-END")
    finally:
        os._exit(0)
os.close(write_end)
time.sleep(1.0)  # the child fills the pipe and waits; SIGALRM fires
received = bytearray()
while chunk := os.read(read_end, 65536):
    received.extend(chunk)
os.waitpid(pid, 0)
print(json.dumps(received.decode().splitlines()))
"""


def test_signal_handler_flush_during_long_record_writes_after_it() -> None:
    """A signal handler that logs and calls safelog.flush() while its thread
    is writing a long record to a full pipe through a QueueHandler: its
    record comes after the long one, which stays whole."""
    outcome = run_ok(SIGNAL_FLUSH_IN_LONG_RECORD, timeout=60)
    lines = json.loads(outcome.stdout.splitlines()[-1])
    assert ["LONG-START " + "x" * 200_000 + " LONG-END", "SIGNAL-RECORD"] == lines


# A signal handler that logs, then raises (a timeout that gives up, Ctrl-C):
# SIGUSR1 arrives while the main thread is inside the handler's emit().
SIGNAL_THEN_RAISE = """
import json, logging, logging.handlers, os, signal, sys
import safelog
PATH, CLS = sys.argv[1], sys.argv[2]
handler = eval(CLS)(PATH)
log = logging.getLogger("raise"); log.addHandler(handler); log.propagate = False
def on_usr1(signum, frame):
    log.warning("giving up")
    raise KeyboardInterrupt
signal.signal(signal.SIGUSR1, on_usr1)
class Interrupted(logging.Formatter):
    def format(self, record):
        if record.msg == "work":
            os.kill(os.getpid(), signal.SIGUSR1)  # handled before kill returns
        return super().format(record)
handler.setFormatter(Interrupted("%(message)s"))
try:
    log.warning("work")
except KeyboardInterrupt:
    raised = True
else:
    raised = False
handler.close()
with open(PATH) as file:
    print(json.dumps([raised, file.read().splitlines()]))
"""


@pytest.mark.parametrize("cls", ["safelog.FileHandler", "logging.FileHandler"])
def test_record_of_a_signal_handler_that_raises_is_written(
    cls: str, tmp_path: object
) -> None:
    """A signal handler that logs, then raises KeyboardInterrupt, while its
    thread is inside emit(): its record is written (by the standard
    handler too), and the exception reaches the log call."""
    path = f"{tmp_path}/out.log"
    outcome = run_ok(SIGNAL_THEN_RAISE, args=(path, cls), timeout=30)
    assert [True, ["giving up"]] == json.loads(outcome.stdout.splitlines()[-1])


class _Interrupting(logging.Formatter):
    """Logs "first" and "second" while formatting "outer", then raises
    KeyboardInterrupt; raises it again while formatting "first"."""

    def __init__(self, log: logging.Logger) -> None:
        super().__init__("%(message)s")
        self.log = log

    def format(self, record: logging.LogRecord) -> str:
        if record.msg == "outer":
            self.log.warning("first")
            self.log.warning("second")
            raise KeyboardInterrupt
        if record.msg == "first" and not getattr(record, "retried", False):
            record.retried = True
            raise KeyboardInterrupt
        return super().format(record)


@pytest.mark.parametrize("finish", ["flush", "close"])
def test_records_left_by_an_interrupted_catch_up_written_by(finish: str) -> None:
    """The record in progress raises KeyboardInterrupt, and so does the
    first of the records logged re-entrantly meanwhile, as it is written
    after it: the log call raises, and flush() (or close()) writes the one
    left."""
    handler = _Collecting()
    log = logging.getLogger(f"test_reentrant.interrupted.{finish}")
    log.propagate = False
    handler.setFormatter(_Interrupting(log))
    log.addHandler(handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            log.warning("outer")
        assert "" == handler.stream.getvalue()
        getattr(handler, finish)()
    finally:
        log.removeHandler(handler)
    assert "second\n" == handler.stream.getvalue()


# A signal handler that forks while its own thread is inside
# StreamHandler.emit(), the record in the buffered stream but not flushed:
# a line tracer sends SIGUSR1 just before emit()'s flush, so the timing is
# exact.  The child returns from the signal handler, as a child may, logs,
# and exits normally (which flushes the stream it inherited).
FORK_INSIDE_EMIT = """
import inspect, json, logging, os, signal, sys, time
import safelog
from safelog._harness import wait_for_children
PATH = sys.argv[1]
stream = open(PATH, "w")  # block-buffered
handler = safelog.StreamHandler(stream)
handler.setFormatter(logging.Formatter("%(message)s"))
log = logging.getLogger("fork"); log.addHandler(handler); log.propagate = False
children = []
def on_usr1(signum, frame):
    pid = os.fork()
    if pid:
        children.append(pid)
signal.signal(signal.SIGUSR1, on_usr1)
emit = logging.StreamHandler.emit
lines, first = inspect.getsourcelines(emit)
flush_line = first + next(n for n, line in enumerate(lines) if "self.flush()" in line)
def trace(frame, event, arg):
    if frame.f_code is not emit.__code__:
        return None
    def line(frame, event, arg):
        if event == "line" and frame.f_lineno == flush_line:
            sys.settrace(None)
            frame.f_trace = None
            os.kill(os.getpid(), signal.SIGUSR1)
        return line
    return line
sys.settrace(trace)
try:
    log.warning("parent record")
    raised = None
except Exception as error:
    raised = repr(error)
sys.settrace(None)
if not children:  # the child
    log.warning("child record, the log call raised %s", raised)
    sys.exit(0)
if wait_for_children({children[0]: time.monotonic() + 20})[children[0]] is None:
    sys.exit("child hung")
handler.flush()
with open(PATH) as file:
    print(json.dumps(sorted(file.read().splitlines())))
"""


def test_fork_from_signal_handler_inside_emit_writes_record_once(
    tmp_path: object,
) -> None:
    """A signal handler forks while its thread is inside emit(), the record
    still in the stream's buffer: the parent writes it, the child does not
    (it drops the inherited buffer once that emit() returns there), and the
    child's interrupted log call returns normally."""
    path = f"{tmp_path}/out.log"
    outcome = run_ok(FORK_INSIDE_EMIT, args=(path,), timeout=60)
    lines = json.loads(outcome.stdout.splitlines()[-1])
    assert ["child record, the log call raised None", "parent record"] == lines
