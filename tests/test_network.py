"""safelog's network handlers over real loopback sockets, across real forks.

Every scenario that forks runs in a child interpreter with a hard deadline
(``scenario.run_ok``).  Its collectors live in that interpreter and are
imported from this module (the scenario runs with this directory as its
working directory), so they print what each connection received as JSON and
the test compares that with what it expects.
"""

from __future__ import annotations

import io
import json
import logging
import logging.handlers
import pathlib
import pickle
import re
import select
import socket
import struct
import textwrap
import threading
import time

import pytest

import safelog
from safelog._harness import wait_for_children
from scenario import run_ok

TESTS_DIR = pathlib.Path(__file__).parent

#: What a summary says where the framing of a byte stream broke.
CORRUPT = "CORRUPT"

_MESSAGE = re.compile(
    r"(?P<who>[a-z0-9]+)/(?P<index>\d+)/(?P<size>\d+)/(?P<body>.*)", re.S
)


def message(who: str, index: int, size: int = 0) -> str:
    """A log message whose body proves it arrived whole: ``size`` characters
    of a pattern that names its sender and index."""
    pattern = f"{who}.{index}."
    body = (pattern * (size // len(pattern) + 1))[:size]
    return f"{who}/{index}/{size}/{body}"


def summary(text: str) -> str:
    """``"who/index"`` for a whole message, ``"TORN: ..."`` for anything else."""
    match = _MESSAGE.fullmatch(text)
    if match is not None:
        who, index, size = match["who"], int(match["index"]), int(match["size"])
        if text == message(who, index, size):
            return f"{who}/{index}"
    return f"TORN: {text[:60]!r}"


class _NoGlobals(pickle.Unpickler):
    # A record's pickle holds only builtin values; a torn stream must not be
    # able to make us import anything.
    def find_class(self, module: str, name: str) -> object:
        raise pickle.UnpicklingError(f"refusing {module}.{name}")


def pickled_summaries(data: bytes) -> list[str]:
    """Summaries of the length-prefixed pickles (``SocketHandler`` frames) in
    ``data``, ending with ``CORRUPT`` where the framing breaks."""
    summaries: list[str] = []
    offset = 0
    while offset < len(data):
        try:
            (length,) = struct.unpack(">L", data[offset : offset + 4])
            frame = data[offset + 4 : offset + 4 + length]
            if len(frame) != length:
                raise ValueError("truncated frame")
            text = _NoGlobals(io.BytesIO(frame)).load()["msg"]
        except Exception:
            summaries.append(CORRUPT)
            break
        summaries.append(summary(text) if isinstance(text, str) else CORRUPT)
        offset += 4 + length
    return summaries


_SYSLOG_FRAME = re.compile(rb"<\d+>(.*)", re.S)


def syslog_summaries(data: bytes) -> list[str]:
    """Summaries of the NUL-terminated syslog records (``SysLogHandler``
    over a stream, or one datagram) in ``data``."""
    *frames, rest = data.split(b"\0")
    summaries = []
    for frame in frames:
        match = _SYSLOG_FRAME.fullmatch(frame)
        summaries.append(summary(match[1].decode()) if match else CORRUPT)
    if rest:
        summaries.append(CORRUPT)
    return summaries


class StreamCollector:
    """A loopback stream server that keeps every byte of every connection,
    in the order the connections were accepted.

    With ``hold_first``, the first connection is read once and then left
    unread until :meth:`release`, so its sender blocks with a full buffer.
    """

    def __init__(self, *, unix_path: str | None = None, hold_first: bool = False):
        if unix_path is None:
            self.listener = socket.create_server(("127.0.0.1", 0))
        else:
            self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.listener.bind(unix_path)
            self.listener.listen()
        self.address = self.listener.getsockname()
        self.listener.settimeout(0.05)
        self.received: list[bytearray] = []
        self._readers: list[threading.Thread] = []
        self._released = threading.Event()
        if not hold_first:
            self._released.set()
        self._stopping = threading.Event()
        self._acceptor = threading.Thread(target=self._accept, daemon=True)
        self._acceptor.start()

    def release(self) -> None:
        """Start reading the held connection again."""
        self._released.set()

    def connections(self, timeout: float = 20.0) -> list[bytes]:
        """Accept what is pending, then wait for every connection to end."""
        self.release()
        self._stopping.set()
        deadline = time.monotonic() + timeout
        self._acceptor.join(timeout)
        for reader in self._readers:
            reader.join(max(0.0, deadline - time.monotonic()))
            if reader.is_alive():
                raise TimeoutError("a connection was never closed")
        self.listener.close()
        return [bytes(data) for data in self.received]

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except socket.timeout:
                if self._stopping.is_set():
                    return  # nothing left in the backlog
                continue
            data = bytearray()
            first = not self.received
            self.received.append(data)
            reader = threading.Thread(
                target=self._read, args=(connection, data, first), daemon=True
            )
            self._readers.append(reader)
            reader.start()

    def _read(self, connection: socket.socket, data: bytearray, first: bool) -> None:
        with connection:
            connection.settimeout(None)
            while True:
                chunk = connection.recv(1 << 20)
                if not chunk:
                    return
                data += chunk
                if first:
                    self._released.wait()


class DatagramCollector:
    """A loopback UDP socket that keeps each datagram with its source port."""

    def __init__(self) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind(("127.0.0.1", 0))
        self.address = self.socket.getsockname()

    def __enter__(self) -> DatagramCollector:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.socket.close()

    def by_source(self, count: int, timeout: float = 10.0) -> list[list[bytes]]:
        """The first ``count`` datagrams, grouped by source port in order of
        first arrival."""
        groups: dict[int, list[bytes]] = {}
        deadline = time.monotonic() + timeout
        for _ in range(count):
            ready, _, _ = select.select(
                [self.socket], [], [], deadline - time.monotonic()
            )
            if not ready:
                break
            data, (_, port) = self.socket.recvfrom(1 << 16)
            groups.setdefault(port, []).append(data)
        return list(groups.values())


def wait_for_child(pid: int, timeout: float = 20.0) -> int:
    """The exit status of child ``pid``; kill it and fail if it hangs."""
    code = wait_for_children({pid: time.monotonic() + timeout})[pid]
    if code is None:
        raise TimeoutError(f"child {pid} hung")
    return code


def run_scenario(code: str) -> object:
    """Run ``code`` after a common prelude; return the JSON it prints last."""
    prelude = """
        import json, logging, logging.handlers, os, socket, sys, threading, time
        import warnings
        import safelog
        from test_network import (
            DatagramCollector, StreamCollector, message, pickled_summaries,
            syslog_summaries, wait_for_child,
        )
        logger = logging.getLogger("network-test")
        logger.setLevel(logging.INFO)
        logger.propagate = False
        # The collectors' threads stay in the parent: the child never uses them.
        warnings.simplefilter("ignore", DeprecationWarning)
    """
    outcome = run_ok(
        textwrap.dedent(prelude) + textwrap.dedent(code), cwd=TESTS_DIR, timeout=60.0
    )
    return json.loads(outcome.stdout.strip().splitlines()[-1])


# What each stream handler under test is, and how to read what it sends.
STREAM_HANDLERS = {
    "SocketHandler": (
        "safelog.SocketHandler('127.0.0.1', collector.address[1])",
        "pickled_summaries",
    ),
    "SysLogHandler-tcp": (
        "safelog.SysLogHandler(collector.address, socktype=socket.SOCK_STREAM)",
        "syslog_summaries",
    ),
    "SysLogHandler-unix-stream": (
        "safelog.SysLogHandler(collector.address, socktype=socket.SOCK_STREAM)",
        "syslog_summaries",
    ),
}


def _collector_for(kind: str, tmp_path: pathlib.Path, **options: bool) -> str:
    unix_path = repr(str(tmp_path / "log.sock")) if "unix" in kind else None
    return f"StreamCollector(unix_path={unix_path}, **{options!r})"


@pytest.mark.parametrize("kind", STREAM_HANDLERS)
@pytest.mark.parametrize("child_closes", [False, True])
def test_child_logs_on_a_connection_of_its_own(
    kind: str, child_closes: bool, tmp_path: pathlib.Path
) -> None:
    """A forked child's records arrive whole on a new connection, and the
    parent's connection carries on, even after the child closes its handler."""
    handler, parse = STREAM_HANDLERS[kind]
    connections = run_scenario(
        f"""
        collector = {_collector_for(kind, tmp_path)}
        handler = {handler}
        logger.addHandler(handler)
        logger.info(message("parent", 0))
        pid = os.fork()
        if pid == 0:
            for index in range(5):
                logger.info(message("child", index, 3000))
            if {child_closes}:
                handler.close()  # as logging.shutdown() at exit
            os._exit(0)
        assert wait_for_child(pid) == 0
        for index in range(1, 4):
            logger.info(message("parent", index, 3000))
        handler.close()
        print(json.dumps([{parse}(data) for data in collector.connections()]))
        """
    )
    parent = [f"parent/{index}" for index in range(4)]
    child = [f"child/{index}" for index in range(5)]
    assert [parent, child] == connections


@pytest.mark.parametrize("kind", ["SocketHandler", "SysLogHandler-tcp"])
def test_stdlib_child_writes_on_its_parents_connection(kind: str) -> None:
    """The defect: a child of a standard handler writes on the connection it
    inherited, so the receiver sees two processes' records on one stream."""
    handler, parse = STREAM_HANDLERS[kind]
    handler = handler.replace("safelog.", "logging.handlers.")
    connections = run_scenario(
        f"""
        collector = StreamCollector()
        handler = {handler}
        logger.addHandler(handler)
        logger.info(message("parent", 0))
        pid = os.fork()
        if pid == 0:
            logger.info(message("child", 0))
            os._exit(0)
        assert wait_for_child(pid) == 0
        logger.info(message("parent", 1))
        handler.close()
        print(json.dumps([{parse}(data) for data in collector.connections()]))
        """
    )
    assert [["parent/0", "child/0", "parent/1"]] == connections


# Larger than the loopback socket buffers of both ends together, so the thread
# sending it blocks in sendall() while the receiver holds the connection.
BIG = 24 * 1024 * 1024

MID_SEND_FORK = """
    collector = StreamCollector(hold_first=True)
    handler = {handler}
    logger.addHandler(handler)
    logger.info(message("parent", 0))
    handler.{socket}.settimeout(30)  # the stdlib's 1 s would expire while held
    sender = threading.Thread(target=logger.info, args=(message("thread", 0, BIG),))
    sender.start()
    while handler.lock.acquire(blocking=False):  # until the sender holds it
        handler.lock.release()
        time.sleep(0.005)
    time.sleep(0.2)  # the sender fills the buffers and blocks
    pid = os.fork()  # after the fork timeout, without the handler lock
    if pid == 0:
        for index in range(3):
            logger.info(message("child", index, 1000))
        os._exit(0)
    time.sleep(0.3)  # the child sends, or blocks trying to
    collector.release()
    assert wait_for_child(pid) == 0
    sender.join(30)
    logger.info(message("parent", 1))
    handler.close()
    print(json.dumps([{parse}(data) for data in collector.connections()]))
"""


@pytest.mark.parametrize(
    ("kind", "socket_attribute"),
    [("SocketHandler", "sock"), ("SysLogHandler-tcp", "socket")],
)
def test_child_forked_mid_send_never_tears_the_parents_record(
    kind: str, socket_attribute: str
) -> None:
    """A child forked while a parent thread is blocked sending a big record
    sends its own records on its own connection; every record arrives whole,
    exactly once, and the parent's only from the parent."""
    handler, parse = STREAM_HANDLERS[kind]
    code = MID_SEND_FORK.format(handler=handler, socket=socket_attribute, parse=parse)
    connections = run_scenario(f"BIG = {BIG}\n" + textwrap.dedent(code))
    child = [f"child/{index}" for index in range(3)]
    assert [["parent/0", "thread/0", "parent/1"], child] == connections


@pytest.mark.parametrize(
    ("kind", "socket_attribute"),
    [("SocketHandler", "sock"), ("SysLogHandler-tcp", "socket")],
)
def test_stdlib_child_forked_mid_send_tears_the_stream(
    kind: str, socket_attribute: str
) -> None:
    """The defect: with a standard handler, the child's records land inside
    the big record the parent thread is still sending, so the stream tears."""
    handler, parse = STREAM_HANDLERS[kind]
    handler = handler.replace("safelog.", "logging.handlers.")
    code = MID_SEND_FORK.format(handler=handler, socket=socket_attribute, parse=parse)
    connections = run_scenario(f"BIG = {BIG}\n" + textwrap.dedent(code))
    assert isinstance(connections, list)
    assert 1 == len(connections)
    whole = {"parent/0", "thread/0", "child/0", "child/1", "child/2", "parent/1"}
    torn = [summary for summary in connections[0] if summary not in whole]
    assert [] != torn


DATAGRAM_HANDLERS = {
    "DatagramHandler": (
        "DatagramHandler('127.0.0.1', collector.address[1])",
        pickled_summaries,
    ),
    "SysLogHandler-udp": ("SysLogHandler(collector.address)", syslog_summaries),
}


@pytest.mark.parametrize("kind", DATAGRAM_HANDLERS)
@pytest.mark.parametrize("module", ["safelog", "logging.handlers"])
def test_child_sends_datagrams_from_a_socket_of_its_own(kind: str, module: str) -> None:
    """A forked child's datagrams come from a source port of its own; a
    standard handler's child sends from its parent's socket (the defect)."""
    handler, parse = DATAGRAM_HANDLERS[kind]
    datagrams = run_scenario(
        f"""
        collector = DatagramCollector()
        handler = {module}.{handler}
        logger.addHandler(handler)
        logger.info(message("parent", 0))
        pid = os.fork()
        if pid == 0:
            for index in range(3):
                logger.info(message("child", index, 500))
            os._exit(0)
        assert wait_for_child(pid) == 0
        logger.info(message("parent", 1))
        handler.close()
        groups = collector.by_source(5)
        print(json.dumps([[data.hex() for data in group] for group in groups]))
        """
    )
    assert isinstance(datagrams, list)
    sources = [
        [s for d in group for s in parse(bytes.fromhex(d))] for group in datagrams
    ]
    parent = ["parent/0", "parent/1"]
    child = ["child/0", "child/1", "child/2"]
    if module == "safelog":
        assert [parent, child] == sources
    else:
        assert [["parent/0", *child, "parent/1"]] == sources


def test_child_that_never_logged_can_close_the_syslog_handler() -> None:
    """A child that closes a ``SysLogHandler`` before logging (so with no
    socket, which 3.9 and 3.10's ``close()`` cannot handle) exits cleanly."""
    outcome = run_scenario(
        """
        collector = DatagramCollector()
        handler = safelog.SysLogHandler(collector.address)
        pid = os.fork()
        if pid == 0:
            handler.close()
            os._exit(0)
        print(json.dumps(wait_for_child(pid)))
        """
    )
    assert 0 == outcome


def _log_one_record(handler: logging.Handler) -> None:
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    fields = {"name": "app", "levelno": logging.WARNING, "levelname": "WARNING"}
    handler.handle(
        logging.makeLogRecord({**fields, "msg": "caf\u00e9 %d", "args": (7,)})
    )
    handler.close()


def test_syslog_udp_bytes_are_the_stdlib_bytes() -> None:
    """Outside of fork, ``SysLogHandler`` over UDP sends the standard bytes."""
    with DatagramCollector() as collector:
        for cls in (logging.handlers.SysLogHandler, safelog.SysLogHandler):
            _log_one_record(cls(collector.address, facility="local3"))
        stdlib, ours = collector.by_source(2)
    assert ["<156>WARNING app caf\u00e9 7\0".encode()] == stdlib
    assert stdlib == ours


def test_syslog_tcp_bytes_are_the_stdlib_bytes() -> None:
    """Outside of fork, ``SysLogHandler`` over TCP sends the standard bytes."""
    collector = StreamCollector()
    for cls in (logging.handlers.SysLogHandler, safelog.SysLogHandler):
        _log_one_record(cls(collector.address, socktype=socket.SOCK_STREAM))
    stdlib, ours = collector.connections()
    assert "<12>WARNING app caf\u00e9 7\0".encode() == stdlib
    assert stdlib == ours


def test_socket_handler_frames_are_the_stdlib_frames() -> None:
    """Outside of fork, ``SocketHandler`` sends the standard pickles."""
    collector = StreamCollector()
    for cls in (logging.handlers.SocketHandler, safelog.SocketHandler):
        handler = cls("127.0.0.1", collector.address[1])
        handler.handle(logging.makeLogRecord({"msg": message("parent", 0, 10)}))
        handler.close()
    stdlib, ours = collector.connections()
    assert ["parent/0"] == pickled_summaries(stdlib)
    assert len(stdlib) == len(ours)


def test_datagram_handler_is_a_socket_handler() -> None:
    """``DatagramHandler`` keeps the standard class tree."""
    handler = safelog.DatagramHandler("127.0.0.1", 9)
    try:
        assert isinstance(handler, safelog.SocketHandler)
        assert isinstance(handler, logging.handlers.DatagramHandler)
    finally:
        handler.close()
