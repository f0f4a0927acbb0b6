"""safelog.RFC5424Handler: RFC 5424 over TCP with octet counting, against a
real rsyslogd (see ``rsyslog.py``), across a restart of the collector while
threads log and the main thread forks children that log too.
"""

from __future__ import annotations

import collections
import json
import logging
import logging.config
import os
import pathlib
import re
import socket
import textwrap
import time
from collections.abc import Iterator
from typing import Any

import pytest

import safelog
from rsyslog import Rsyslog, launch
from safelog._rfc5424 import _timestamp
from scenario import finish, passed, start

TESTS_DIR = pathlib.Path(__file__).parent

# imtcp takes octet-counted frames (RFC 6587) on any TCP input; each message
# is written as one JSON object of the fields rsyslog parsed.  Control
# characters, and a line end that ends a message, are kept as sent (rsyslog
# escapes the first and drops the second by default).
CONFIG = """\
global(workDirectory="{work}" maxMessageSize="64k"
       parser.escapeControlCharactersOnReceive="off"
       parser.dropTrailingLFOnReception="off")
module(load="imtcp")
template(name="fields" type="list" option.jsonf="on") {{
    property(outname="pri" name="pri" format="jsonf")
    property(outname="timestamp" name="timereported" dateFormat="rfc3339"
             format="jsonf")
    property(outname="hostname" name="hostname" format="jsonf")
    property(outname="app_name" name="app-name" format="jsonf")
    property(outname="procid" name="procid" format="jsonf")
    property(outname="msgid" name="msgid" format="jsonf")
    property(outname="sd" name="structured-data" format="jsonf")
    property(outname="msg" name="msg" format="jsonf")
}}
ruleset(name="to_file") {{
    action(type="omfile" file="{output}" template="fields")
}}
input(type="imtcp" address="127.0.0.1" port="{tcp}" ruleset="to_file")
"""


@pytest.fixture
def rsyslog(tmp_path: pathlib.Path) -> Iterator[Rsyslog]:
    """An rsyslogd of this test's own, stopped at teardown."""
    daemon = launch(tmp_path, CONFIG, ("tcp",))
    try:
        yield daemon
    finally:
        daemon.stop()


def received(daemon: Rsyslog) -> list[dict[str, str]]:
    return [json.loads(line) for line in daemon.lines()]


def sequence_id(message: dict[str, str]) -> int:
    found = re.fullmatch(r'\[meta sequenceId="(\d+)"\]', message["sd"])
    assert found, message
    return int(found.group(1))


# --- the message, field by field ---------------------------------------------


def test_rsyslog_parses_every_field_as_sent(rsyslog: Rsyslog) -> None:
    """ASCII, non-ASCII and multi-line messages reach rsyslog whole, and the
    fields it parses are those sent."""
    texts = [
        "plain ascii",
        "non-ascii: h\u00e9llo \u2603 \u65e5\u672c\u8a9e",
        "line one\nline two\n\ttabbed and trailing\n",
        "",
    ]
    handler = safelog.RFC5424Handler(
        ("127.0.0.1", rsyslog.ports["tcp"]),
        facility="local3",
        app_name="safelog-test",
        msgid="TEST",
    )
    created = []
    handler.addFilter(lambda record: created.append(record.created) or True)
    logger = logging.getLogger("test_rfc5424.fields")
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    levels = [logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL]
    for level, text in zip(levels, texts):
        logger.log(level, "%s", text)
    handler.close()
    rsyslog.wait_for(len(texts))

    expected = [
        {
            "pri": str(19 * 8 + severity),
            "timestamp": _timestamp(when),
            "hostname": socket.gethostname(),
            "app_name": "safelog-test",
            "procid": str(os.getpid()),
            "msgid": "TEST",
            "sd": f'[meta sequenceId="{number}"]',
            "msg": text,
        }
        for number, (severity, when, text) in enumerate(
            zip([6, 4, 3, 2], created, texts), start=1
        )
    ]
    assert expected == received(rsyslog)


def test_message_is_octet_counted_rfc5424() -> None:
    """The bytes of one message: ``LENGTH SP <PRI>1 TIMESTAMP HOST APP PROCID
    MSGID SD MSG``, MSG in UTF-8, the length counting bytes."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        handler = safelog.RFC5424Handler(
            server.getsockname(), hostname="host.example", app_name="app"
        )
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
        record = logging.LogRecord(
            "svc", logging.WARNING, __file__, 1, "\u00e9t\u00e9", None, None
        )
        handler.handle(record)
        connection, _ = server.accept()
        handler.close()
        with connection:
            data = b""
            while chunk := connection.recv(65536):
                data += chunk
    message = (
        f"<12>1 {_timestamp(record.created)} host.example app {os.getpid()} - "
        f'[meta sequenceId="1"] svc: \u00e9t\u00e9'
    ).encode()
    assert b"%d %s" % (len(message), message) == data


@pytest.mark.parametrize(
    ("options", "error", "names"),
    [
        ({"address": "localhost:514"}, TypeError, "address"),
        ({"address": ("localhost", 0)}, ValueError, "address port"),
        ({"facility": "nope"}, ValueError, "facility"),
        ({"facility": 24}, ValueError, "facility"),
        ({"facility": 1.0}, TypeError, "facility"),
        ({"hostname": "two words"}, ValueError, "hostname"),
        ({"app_name": "x" * 49}, ValueError, "app_name"),
        ({"msgid": ""}, ValueError, "msgid"),
        ({"spool_size": 0}, ValueError, "spool_size"),
        ({"spool_size": "10"}, TypeError, "spool_size"),
        ({"timeout": -1}, ValueError, "timeout"),
        ({"flush_timeout": float("inf")}, ValueError, "flush_timeout"),
        ({"resend_window": None}, TypeError, "resend_window"),
    ],
)
def test_bad_argument_names_itself(
    options: dict[str, object], error: type[Exception], names: str
) -> None:
    with pytest.raises(error, match=f"^{names} must"):
        safelog.RFC5424Handler(**options)  # type: ignore[arg-type]


def test_dict_config_with_a_list_address(rsyslog: Rsyslog) -> None:
    """From ``dictConfig`` (JSON gives the address as a list)."""
    logging.config.dictConfig(
        {
            "version": 1,
            "incremental": False,
            "disable_existing_loggers": False,
            "handlers": {
                "collector": {
                    "class": "safelog.RFC5424Handler",
                    "address": ["127.0.0.1", rsyslog.ports["tcp"]],
                    "app_name": "from-dictconfig",
                }
            },
            "loggers": {"test_rfc5424.config": {"handlers": ["collector"]}},
        }
    )
    logger = logging.getLogger("test_rfc5424.config")
    logger.warning("configured")
    for handler in logger.handlers:
        handler.close()
    rsyslog.wait_for(1)
    assert [("from-dictconfig", "configured")] == [
        (message["app_name"], message["msg"]) for message in received(rsyslog)
    ]


# --- a collector restart ---------------------------------------------------------

THREADS = 4
CHILDREN = 12

RESTART_SCENARIO = """
    import json, logging, logging.handlers, os, socket, sys, threading, time, warnings
    import safelog

    warnings.simplefilter("ignore", DeprecationWarning)  # forks with threads
    kind, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    if kind == "safelog":
        handler = safelog.RFC5424Handler(("127.0.0.1", port), flush_timeout=15)
    elif kind == "syslog":
        handler = logging.handlers.SysLogHandler(
            ("127.0.0.1", port), socktype=socket.SOCK_STREAM)
        handler.append_nul = False
        handler.setFormatter(logging.Formatter("restart: %(message)s\\n"))
    else:
        raise SystemExit(f"unknown kind {{kind}}")
    errors = []
    handler.handleError = lambda record: errors.append(record.getMessage())
    logger = logging.getLogger("restart")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.addHandler(handler)
    print("ready", flush=True)  # handler made: the test may stop the collector

    stop = threading.Event()
    logged = {{}}
    def chatter(number):
        count = 0
        while not stop.is_set():
            logger.info("thread%d/%d", number, count)
            count += 1
            time.sleep(0.002)
        logged[number] = count
    threads = [threading.Thread(target=chatter, args=(n,)) for n in range({threads})]
    for thread in threads:
        thread.start()

    children = []
    for number in range({children}):
        time.sleep(seconds / {children})
        pid = os.fork()
        if pid == 0:
            for index in range(5):
                logger.info("child%d/%d", number, index)
            safelog.flush()
            os._exit(0)
        children.append(pid)
    statuses = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
                if hasattr(os, "waitstatus_to_exitcode") else os.waitpid(pid, 0)[1]
                for pid in children]
    stop.set()
    for thread in threads:
        thread.join()
    logger.info("parent/last")
    handler.close()
    print(json.dumps({{
        "statuses": statuses,
        "logged": logged,
        "errors": len(errors),
        "dropped": getattr(handler, "dropped", None),
        "resent": getattr(handler, "resent", None),
    }}))
"""

SCENARIO_SECONDS = 5.0
OUTAGE_STARTS = 1.0
OUTAGE_SECONDS = 2.0


def _restart_while_logging(
    rsyslog: Rsyslog, kind: str
) -> tuple[list[str], dict[str, Any]]:
    """Run the scenario with the ``kind`` of handler; stop rsyslog for
    about 2 s in the middle.  Returns the records logged and the result."""
    code = RESTART_SCENARIO.format(threads=THREADS, children=CHILDREN)
    process = start(
        textwrap.dedent(code),
        cwd=TESTS_DIR,
        args=(kind, str(rsyslog.ports["tcp"]), str(SCENARIO_SECONDS)),
    )
    # Counted from the handler's first connection: starting an interpreter
    # may take longer than OUTAGE_STARTS on a loaded machine.
    assert process.stdout is not None
    assert "ready\n" == process.stdout.readline()
    time.sleep(OUTAGE_STARTS)
    rsyslog.stop()
    time.sleep(OUTAGE_SECONDS)
    rsyslog.start()
    outcome = passed(finish(process, timeout=90.0))
    result = json.loads(outcome.stdout.strip().splitlines()[-1])
    assert [0] * CHILDREN == result["statuses"]
    expected = ["parent/last"]
    for number, count in result["logged"].items():
        expected += [f"thread{number}/{index}" for index in range(count)]
    for number in range(CHILDREN):
        expected += [f"child{number}/{index}" for index in range(5)]
    return sorted(expected), result


def test_collector_restart_loses_nothing(rsyslog: Rsyslog) -> None:
    """4 threads log and the main thread forks children that log, while
    rsyslog is stopped for 2 s and started again: every record arrives; a
    record arrives twice only if the handler sent it again after the lost
    connection, under the same PROCID and sequenceId, and says so."""
    expected, result = _restart_while_logging(rsyslog, "safelog")
    rsyslog.wait_for(len(expected))
    messages = received(rsyslog)
    records = [m for m in messages if not m["msg"].startswith("safelog.")]
    reports = [m["msg"] for m in messages if m["msg"].startswith("safelog.")]

    assert 0 == result["dropped"]
    assert 0 == result["errors"]
    assert expected == sorted(set(m["msg"] for m in records))
    copies = collections.Counter((m["procid"], sequence_id(m)) for m in records)
    repeated = sum(count - 1 for count in copies.values())
    assert all(count <= 2 for count in copies.values())
    assert len(records) - len(expected) == repeated <= result["resent"]
    if result["resent"]:
        assert any(f"sent {result['resent']} message(s) again" in r for r in reports)


def test_stdlib_syslog_handler_loses_the_outage(rsyslog: Rsyslog) -> None:
    """The comparison: the standard SysLogHandler over TCP, in the same
    scenario, loses the records of the outage (and, never reconnecting,
    every later one of the parent)."""
    expected, _ = _restart_while_logging(rsyslog, "syslog")
    rsyslog.wait_for(len(expected), timeout=5.0, quiet=0.5)
    got = {message["msg"].strip() for message in received(rsyslog)}
    lost = [record for record in expected if record not in got]
    assert len(lost) > len(expected) // 10, (len(lost), len(expected))
