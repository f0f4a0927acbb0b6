"""safelog.SysLogHandler against a real rsyslog daemon, across real forks.

Each test starts its own ``rsyslogd`` (never the system's service, never
``/dev/log``): a configuration of its own in ``tmp_path`` with UDP and TCP
inputs on loopback ports chosen free at run time, writing each message, and
nothing else, as one line of a file.  Where rsyslogd is not installed or does
not start, the tests skip with the reason; with ``CI`` set they fail instead,
so that CI proves the daemon ran.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import textwrap
import time
from collections.abc import Iterator

import pytest

from scenario import run_ok
from test_network import summary

TESTS_DIR = pathlib.Path(__file__).parent

# Records up to 1 MiB are kept whole (rsyslog's default limit is 8 KiB).
CONFIG = """\
global(workDirectory="{work}" maxMessageSize="1m")
module(load="imudp")
module(load="imtcp")
template(name="message_only" type="string" string="%rawmsg-after-pri%\\n")
ruleset(name="to_file") {{
    action(type="omfile" file="{output}" template="message_only")
}}
input(type="imudp" address="127.0.0.1" port="{udp}" rcvBufSize="4m"
      ruleset="to_file")
# The standard SysLogHandler ends each record with NUL, and no line end.
input(type="imtcp" address="127.0.0.1" port="{tcp_nul}" addtlFrameDelimiter="0"
      ruleset="to_file")
input(type="imtcp" address="127.0.0.1" port="{tcp_lf}" ruleset="to_file")
"""

PROBES = ("probe udp", "probe tcp nul", "probe tcp lf")


@dataclasses.dataclass
class Rsyslog:
    """A running rsyslogd of a test's own, and where it writes."""

    process: subprocess.Popen[bytes]
    output: pathlib.Path
    udp: int
    tcp_nul: int
    tcp_lf: int

    def lines(self) -> list[str]:
        """The messages written so far, probes left out."""
        try:
            text = self.output.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return []
        return [line for line in text.splitlines() if line not in PROBES]

    def wait_for(self, count: int, timeout: float = 20.0) -> None:
        """Wait until at least ``count`` messages are written, then stop the
        daemon so that everything it received is in the file."""
        deadline = time.monotonic() + timeout
        while len(self.lines()) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        self.stop()

    def stop(self) -> None:
        """Stop the daemon (it flushes its queue and files), or kill it."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def _free_port(kind: socket.SocketKind) -> int:
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _send_probes(daemon: Rsyslog) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.sendto(b"<14>probe udp", ("127.0.0.1", daemon.udp))
    for port, frame in (
        (daemon.tcp_nul, b"probe tcp nul\0"),
        (daemon.tcp_lf, b"probe tcp lf\n"),
    ):
        address = ("127.0.0.1", port)
        # OSError: not listening yet; the next round of probes tries again.
        with contextlib.suppress(OSError), socket.create_connection(address, 1) as tcp:
            tcp.sendall(b"<14>" + frame)


def _start(rsyslogd: str, directory: pathlib.Path) -> Rsyslog:
    """Start rsyslogd and wait until all three inputs deliver to the file."""
    directory.mkdir()
    output = directory / "messages.log"
    ports = {
        "udp": _free_port(socket.SOCK_DGRAM),
        "tcp_nul": _free_port(socket.SOCK_STREAM),
        "tcp_lf": _free_port(socket.SOCK_STREAM),
    }
    config = directory / "rsyslog.conf"
    config.write_text(CONFIG.format(work=directory, output=output, **ports))
    with open(directory / "rsyslogd.out", "wb") as log:
        process = subprocess.Popen(
            [rsyslogd, "-n", "-f", str(config), "-i", str(directory / "rsyslogd.pid")],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=directory,
            start_new_session=True,  # its own process group: we stop only that
        )
    daemon = Rsyslog(process, output, **ports)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and process.poll() is None:
        _send_probes(daemon)
        time.sleep(0.1)
        written = set(output.read_text().splitlines()) if output.exists() else set()
        if written.issuperset(PROBES):
            return daemon
    daemon.stop()
    said = (directory / "rsyslogd.out").read_text(errors="replace").strip()
    raise RuntimeError(f"rsyslogd did not deliver its probes within 10 s: {said!r}")


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("CI", "").lower() not in ("", "0", "false"):
        pytest.fail(f"CI must run the rsyslog tests: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def rsyslog(tmp_path: pathlib.Path) -> Iterator[Rsyslog]:
    """An rsyslogd of this test's own, stopped at teardown."""
    rsyslogd = shutil.which("rsyslogd") or shutil.which(
        "rsyslogd", path="/usr/sbin:/sbin"
    )
    if rsyslogd is None:
        _skip_or_fail("rsyslogd is not installed (scripts/ci-setup installs it)")
        raise AssertionError("unreachable")
    errors = []
    for attempt in range(3):  # a port chosen free may be taken before use
        try:
            daemon = _start(rsyslogd, tmp_path / f"rsyslog-{attempt}")
            break
        except (OSError, RuntimeError) as error:
            errors.append(str(error))
    else:
        _skip_or_fail(f"rsyslogd did not start: {errors[-1]}")
        raise AssertionError("unreachable")
    try:
        yield daemon
    finally:
        daemon.stop()


CHILDREN = 4

FORKING_PARENT = """
    import json, logging, os, socket, threading, time, warnings
    import safelog
    from test_network import message, wait_for_child

    warnings.simplefilter("ignore", DeprecationWarning)  # forks with a thread
    logger = logging.getLogger("syslog-test")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    handler = safelog.SysLogHandler({address!r}, socktype={socktype})
    if {line_ends}:
        handler.append_nul = False
        handler.setFormatter(logging.Formatter("%(message)s\\n"))
    logger.addHandler(handler)

    # A parent thread logs all along, so forks land in the middle of its sends.
    stop = threading.Event()
    thread_records = 0
    def chatter():
        global thread_records
        while not stop.is_set():
            logger.info(message("thread", thread_records, {size}))
            thread_records += 1
            time.sleep(0.002)
    thread = threading.Thread(target=chatter)
    thread.start()

    children = []
    for number in range({children}):
        logger.info(message("parent", number, {size}))
        pid = os.fork()
        if pid == 0:
            try:
                for index in range({records}):
                    logger.info(message(f"child{{number}}", index, {size}))
            finally:
                os._exit(0)
        children.append(pid)
    statuses = [wait_for_child(pid) for pid in children]
    stop.set()
    thread.join(20)
    logger.info(message("parent", {children}, {size}))
    handler.close()
    print(json.dumps({{"statuses": statuses, "thread_records": thread_records}}))
"""


def _run_forking_parent(
    address: tuple[str, int],
    socktype: str,
    *,
    line_ends: bool,
    records: int,
    size: int,
) -> list[str]:
    """Run the scenario; return the sorted summaries of every record sent."""
    code = FORKING_PARENT.format(
        address=address,
        socktype=socktype,
        line_ends=line_ends,
        size=size,
        children=CHILDREN,
        records=records,
    )
    outcome = run_ok(textwrap.dedent(code), cwd=TESTS_DIR, timeout=60.0)
    result = json.loads(outcome.stdout.strip().splitlines()[-1])
    assert [0] * CHILDREN == result["statuses"]
    expected = [f"parent/{number}" for number in range(CHILDREN + 1)]
    expected += [f"thread/{index}" for index in range(result["thread_records"])]
    for number in range(CHILDREN):
        expected += [f"child{number}/{index}" for index in range(records)]
    return sorted(expected)


# Many small records; or few records big enough (with the standard handler,
# which shares the parent's connection, these arrive torn) that sends block.
VOLUMES = {"many": (50, 3000), "big": (8, 400_000)}


@pytest.mark.parametrize("volume", VOLUMES)
@pytest.mark.parametrize("framing", ["nul", "lf"])
def test_forked_children_deliver_every_record_once_over_tcp(
    rsyslog: Rsyslog, framing: str, volume: str
) -> None:
    """Children forked while a parent thread logs over TCP deliver every
    record, theirs and the parent's, exactly once and whole to rsyslog
    (framed by the standard trailing NUL, or by a line end in the format)."""
    port = rsyslog.tcp_nul if framing == "nul" else rsyslog.tcp_lf
    records, size = VOLUMES[volume]
    expected = _run_forking_parent(
        ("127.0.0.1", port),
        "socket.SOCK_STREAM",
        line_ends=framing == "lf",
        records=records,
        size=size,
    )
    rsyslog.wait_for(len(expected))
    assert expected == sorted(summary(line) for line in rsyslog.lines())


def test_forked_children_deliver_every_record_once_over_udp(rsyslog: Rsyslog) -> None:
    """Children forked while a parent thread logs over UDP deliver every
    record whole and once to rsyslog on loopback (UDP itself promises
    neither; on loopback with room in the buffer, nothing is lost)."""
    expected = _run_forking_parent(
        ("127.0.0.1", rsyslog.udp), "None", line_ends=False, records=20, size=500
    )
    rsyslog.wait_for(len(expected))
    assert expected == sorted(summary(line) for line in rsyslog.lines())
