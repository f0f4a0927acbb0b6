"""safelog.SysLogHandler against a real rsyslog daemon, across real forks.

Each test starts its own ``rsyslogd`` (see ``rsyslog.py``) with UDP and TCP
inputs, writing each message, and nothing else, as one line of a file.
"""

from __future__ import annotations

import json
import pathlib
import textwrap
from collections.abc import Iterator

import pytest

from rsyslog import Rsyslog, launch
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


@pytest.fixture
def rsyslog(tmp_path: pathlib.Path) -> Iterator[Rsyslog]:
    """An rsyslogd of this test's own, stopped at teardown."""
    daemon = launch(tmp_path, CONFIG, ("udp", "tcp_nul", "tcp_lf"))
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
    port = rsyslog.ports["tcp_nul" if framing == "nul" else "tcp_lf"]
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
        ("127.0.0.1", rsyslog.ports["udp"]),
        "None",
        line_ends=False,
        records=20,
        size=500,
    )
    rsyslog.wait_for(len(expected))
    assert expected == sorted(summary(line) for line in rsyslog.lines())
