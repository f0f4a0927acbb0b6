"""``safelog.install()`` and ``safelog.uninstall()``."""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import safelog
import scenario

# The stdio hazards hide behind PYTHONUNBUFFERED, which this machine sets.
BUFFERED = {"PYTHONUNBUFFERED": None}


@pytest.fixture(autouse=True)
def _uninstalled() -> Iterator[None]:
    """Every test starts and ends with safelog not installed."""
    safelog.uninstall()
    yield
    safelog.uninstall()


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    """A fresh logger of the test's own, emptied afterwards."""
    named = logging.getLogger(f"safelog.test_install.{os.urandom(4).hex()}")
    named.propagate = False
    yield named
    safelog.uninstall()  # first: it gives each handler its standard class back
    for handler in named.handlers[:]:
        named.removeHandler(handler)
        handler.close()


# --- in-process: what changes, and what comes back ---------------------------


def test_handlers_are_converted_in_place_with_their_settings(
    logger: logging.Logger, tmp_path: Path
) -> None:
    """Each standard handler becomes the safelog one, the same object at the
    same place in every list, with the same name, level, formatter, filters
    and stream."""
    other = logging.getLogger(logger.name + ".other")
    console = logging.StreamHandler(sys.stderr)
    console.set_name("console")
    console.setLevel(logging.WARNING)
    formatter = logging.Formatter("%(levelname)s %(message)s")
    console.setFormatter(formatter)
    only_app = logging.Filter("app")
    console.addFilter(only_app)
    shared = logging.FileHandler(tmp_path / "shared.log")
    vendor = logging.Handler()
    logger.handlers[:] = [console, vendor, shared]
    other.handlers[:] = [shared]

    report = safelog.install()

    new_console, kept, new_shared = logger.handlers
    assert [console, vendor, shared] == [new_console, kept, new_shared]
    assert (safelog.StreamHandler, vendor) == (type(new_console), kept)
    assert safelog.FileHandler is type(new_shared)
    assert [new_shared] == other.handlers  # one shared handler, still shared
    assert ("console", logging.WARNING, formatter, [only_app], sys.stderr) == (
        new_console.name,
        new_console.level,
        new_console.formatter,
        new_console.filters,
        new_console.stream,
    )
    assert new_console is logging._handlers["console"]  # type: ignore[attr-defined]
    assert shared.baseFilename == new_shared.baseFilename
    assert not report.already_installed
    assert (logger.name, logger.name + ".other") == next(
        entry.loggers for entry in report.changed if entry.subject == repr(shared)
    )
    other.handlers.clear()


def test_uninstall_restores_the_very_same_objects(
    logger: logging.Logger, tmp_path: Path
) -> None:
    """uninstall() puts back the same handler objects, names, lastResort,
    os._exit and Logger.callHandlers."""
    console = logging.StreamHandler(sys.stderr)
    console.set_name("console")
    logfile = logging.FileHandler(tmp_path / "app.log")
    logger.handlers[:] = [console, logfile]
    before = (
        logger.handlers[:],
        logging.lastResort,
        os._exit,
        logging.Logger.__dict__["callHandlers"],
    )

    safelog.install(queue=True)
    logger.warning("while installed")
    uninstalled = safelog.uninstall()

    after = (
        logger.handlers[:],
        logging.lastResort,
        os._exit,
        logging.Logger.__dict__["callHandlers"],
    )
    assert (True, before) == (uninstalled, after)
    assert console is logging._handlers["console"]  # type: ignore[attr-defined]
    logger.warning("after")
    logfile.flush()
    assert "while installed\nafter\n" == (tmp_path / "app.log").read_text()
    assert False is safelog.uninstall()


def test_second_install_changes_nothing_and_says_so(logger: logging.Logger) -> None:
    """A second install() with the same options reports already_installed and
    converts nothing."""
    logger.addHandler(logging.StreamHandler(sys.stderr))
    safelog.install()
    replaced = logger.handlers[:]

    again = safelog.install()

    assert (True, (), ()) == (again.already_installed, again.changed, again.left_alone)
    assert replaced == logger.handlers
    assert "safelog is already installed; nothing changed." == str(again)


def test_install_with_other_options_or_non_bools_raises() -> None:
    """Other options while installed: ValueError; a non-bool: TypeError."""
    safelog.install()
    with pytest.raises(ValueError, match="already installed with queue=False"):
        safelog.install(queue=True)
    with pytest.raises(TypeError, match="std_streams must be True or False, got 1"):
        safelog.install(std_streams=1)  # type: ignore[arg-type]


def test_subclasses_and_unknown_handlers_are_left_alone_with_a_reason(
    logger: logging.Logger,
) -> None:
    """A subclass of a standard handler, an unknown class, a stdlib
    QueueHandler and a safelog handler are left alone, each with its reason."""

    class Coloured(logging.StreamHandler):  # type: ignore[type-arg]
        pass

    import queue

    handlers = [
        Coloured(sys.stderr),
        logging.Handler(),
        logging.handlers.QueueHandler(queue.SimpleQueue()),
        safelog.StreamHandler(sys.stderr),
    ]
    logger.handlers[:] = handlers

    report = safelog.install()

    assert handlers == logger.handlers
    reasons = {entry.subject: entry.reason for entry in report.left_alone}
    assert reasons[repr(handlers[0])].startswith(
        "a subclass of logging.StreamHandler: safelog cannot know what it overrides"
    )
    assert "no safelog replacement for this class" == reasons[repr(handlers[1])]
    assert "listener thread does not exist" in reasons[repr(handlers[2])]
    assert "already a safelog handler" == reasons[repr(handlers[3])]


def test_report_reads_as_lines(logger: logging.Logger) -> None:
    """str(report) is a headline and one line per entry."""
    vendor = logging.Handler()
    logger.addHandler(vendor)

    text = str(safelog.install(std_streams=False))

    lines = text.splitlines()
    assert lines[0].startswith("safelog installed: ")
    assert (
        f"  {vendor!r} on {logger.name!r}: no safelog replacement for this class"
        in (lines)
    )
    assert not any("sys.stdout" in line for line in lines)


def test_file_opened_with_w_is_not_truncated_again(
    logger: logging.Logger, tmp_path: Path
) -> None:
    """A FileHandler opened with mode 'w' keeps what it wrote: converted, it
    appends."""
    path = tmp_path / "app.log"
    logger.handlers[:] = [logging.FileHandler(path, mode="w")]
    logger.warning("before")

    safelog.install()
    logger.warning("after")

    assert "before\nafter\n" == path.read_text()
    assert "a" == logger.handlers[0].mode  # type: ignore[attr-defined]


def test_delayed_file_handler_stays_unopened_until_its_first_record(
    logger: logging.Logger, tmp_path: Path
) -> None:
    """delay=True: the converted handler opens its file only for its first record,
    with the original mode."""
    path = tmp_path / "late.log"
    logger.handlers[:] = [logging.FileHandler(path, mode="w", delay=True)]

    safelog.install()
    created_early = path.exists()
    logger.warning("first")

    assert (False, "first\n", "w") == (
        created_early,
        path.read_text(),
        logger.handlers[0].mode,  # type: ignore[attr-defined]
    )


def test_every_shipped_replacement_converts_with_its_settings(
    logger: logging.Logger, tmp_path: Path
) -> None:
    """Rotating, timed, watched, socket, datagram and syslog handlers become
    the safelog class in place, with the settings they had."""
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    port = receiver.getsockname()[1]
    handlers = [
        logging.handlers.RotatingFileHandler(
            tmp_path / "r.log", maxBytes=1000, backupCount=3, encoding="utf-8"
        ),
        logging.handlers.TimedRotatingFileHandler(
            tmp_path / "t.log", when="h", interval=2, backupCount=4, utc=True
        ),
        logging.handlers.WatchedFileHandler(tmp_path / "w.log", delay=True),
        logging.handlers.SocketHandler("127.0.0.1", port),
        logging.handlers.DatagramHandler("127.0.0.1", port),
        logging.handlers.SysLogHandler(
            ("127.0.0.1", port), facility=logging.handlers.SysLogHandler.LOG_LOCAL3
        ),
    ]
    settings = {
        "RotatingFileHandler": ("baseFilename", "maxBytes", "backupCount", "encoding"),
        "TimedRotatingFileHandler": ("baseFilename", "when", "interval", "utc"),
        "WatchedFileHandler": ("baseFilename", "stream"),
        "SocketHandler": ("host", "port"),
        "DatagramHandler": ("host", "port"),
        "SysLogHandler": ("address", "facility", "socktype"),
    }
    logger.handlers[:] = handlers
    before = [
        [getattr(handler, key) for key in settings[type(handler).__name__]]
        for handler in handlers
    ]
    try:
        safelog.install()
        assert handlers == logger.handlers
        for handler, had in zip(handlers, before):
            name = type(handler).__name__
            assert getattr(safelog, name) is type(handler)
            assert had == [getattr(handler, key) for key in settings[name]]
    finally:
        safelog.uninstall()
        for handler in handlers:
            handler.close()
        logger.handlers.clear()
        receiver.close()


def test_timed_rotating_conversion_keeps_the_schedule(
    logger: logging.Logger, tmp_path: Path
) -> None:
    """A converted TimedRotatingFileHandler rolls over when the standard
    one would have, not one interval after install()."""
    old = logging.handlers.TimedRotatingFileHandler(
        tmp_path / "t.log", when="S", interval=30
    )
    due = int(time.time()) + 7  # as set by the old handler's last rollover
    old.rolloverAt = due
    logger.handlers[:] = [old]
    try:
        safelog.install()
        new = logger.handlers[0]
        assert isinstance(new, safelog.TimedRotatingFileHandler)
        assert due == new.rolloverAt
    finally:
        safelog.uninstall()
        old.close()
        logger.handlers.clear()


def test_queue_routes_records_through_the_writer_thread(
    logger: logging.Logger,
) -> None:
    """install(queue=True): handlers run on safelog's writer thread, with
    levels, propagation and the exception text as without the queue."""
    seen: list[tuple[str, str, str | None]] = []

    class Recorder(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(
                (threading.current_thread().name, record.getMessage(), record.exc_text)
            )

    child = logging.getLogger(logger.name + ".child")
    logger.setLevel(logging.DEBUG)
    logger.addHandler(Recorder())
    quiet = Recorder(logging.ERROR)
    child.addHandler(quiet)

    safelog.install(queue=True)
    child.info("info %d", 1)
    try:
        raise KeyError("k")
    except KeyError:
        child.exception("boom")
    safelog.flush()

    assert [
        ("safelog-writer", "info 1", None),
        ("safelog-writer", "boom", "exc"),
        ("safelog-writer", "boom", "exc"),
    ] == [(t, m, e and "exc") for t, m, e in seen]
    assert "KeyError: 'k'" in str(seen[1][2])
    child.removeHandler(quiet)


def test_queue_routing_never_shows_the_origin_on_a_record(
    logger: logging.Logger,
) -> None:
    """install(queue=True) carries the logger a record was logged on in the
    queue's copy alone: the logged record's __dict__ is the same during and
    after the put, and no filter, formatter or handler on the writer sees a
    key the logging call did not give the record."""
    seen: list[tuple[str, str, frozenset[str]]] = []

    def note(where: str, record: logging.LogRecord) -> None:
        thread = threading.current_thread().name
        seen.append((thread, where, frozenset(record.__dict__)))

    class Watched(logging.LogRecord):
        # Called on the logging thread during the put too: the queue merges
        # a list argument into the message at call time.
        def getMessage(self) -> str:
            note("getMessage", self)
            return super().getMessage()

    class Formatter(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            note("formatter", record)
            return super().format(record)

    class Recorder(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            note("handler", record)
            self.format(record)

    def handler_filter(record: logging.LogRecord) -> bool:
        note("filter", record)
        return True

    logged: dict[str, object] = {}

    def logger_filter(record: logging.LogRecord) -> bool:
        logged.update(record.__dict__)
        return True

    # Made here, after pytest gave each logger that does not propagate its
    # capturing handlers, whose formatting would add keys of its own.
    isolated = logging.getLogger(logger.name + ".isolated")
    isolated.propagate = False
    recorder = Recorder()
    recorder.addFilter(handler_filter)
    recorder.setFormatter(Formatter())
    isolated.addHandler(recorder)
    isolated.addFilter(logger_filter)
    record = Watched(isolated.name, logging.WARNING, __file__, 1, "%s", (["a"],), None)

    safelog.install(queue=True)
    isolated.handle(record)
    safelog.flush()

    keys = frozenset(logged)
    assert logged == record.__dict__
    assert [
        (threading.current_thread().name, "getMessage", keys),
        ("safelog-writer", "filter", keys),
        ("safelog-writer", "handler", keys),
        ("safelog-writer", "formatter", keys),
        ("safelog-writer", "getMessage", keys),
    ] == seen


# --- in a child interpreter: threads, fork, os._exit ---------------------------

# Runs first in every fork scenario: stdout and stderr become one pipe that a
# thread drains slowly, so threads that print block inside the streams'
# buffered writes (holding their locks), as on a busy terminal or log pipe.
# The scenario reports through the original stdout, saved as REPORT.
_SLOW_PIPE = """
import json, os, sys, threading, time, warnings
warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork with threads
REPORT = os.dup(1)
read_end, write_end = os.pipe()
os.dup2(write_end, 1)
os.dup2(write_end, 2)
os.close(write_end)
def drain_slowly():
    while os.read(read_end, 65536):
        time.sleep(0.002)
threading.Thread(target=drain_slowly, daemon=True).start()

def wait_for(pids, seconds):
    # Children still running after `seconds` are killed and counted as hung.
    from safelog._harness import wait_for_children
    codes = wait_for_children(dict.fromkeys(pids, time.monotonic() + seconds))
    return sum(c is None for c in codes.values()), sum(bool(c) for c in codes.values())

def report(**result):
    os.write(REPORT, (json.dumps(result) + "\\n").encode())
"""

_PRINTING_THREADS = """
stop = threading.Event()
def print_until_stopped(stream):
    while not stop.is_set():
        print("x" * 200, file=stream)
for stream in (sys.stdout, sys.stderr):
    threading.Thread(target=print_until_stopped, args=(stream,), daemon=True).start()
time.sleep(0.1)
"""


def _print_while_forking(install: str, forks: int = 20) -> dict[str, int]:
    outcome = scenario.run_ok(
        _SLOW_PIPE
        + "import safelog\n"
        + install
        + _PRINTING_THREADS
        + f"""
pids = []
for index in range({forks}):
    pid = os.fork()
    if pid == 0:
        print("child", index, flush=True)
        print("child", index, file=sys.stderr, flush=True)
        os._exit(0)
    pids.append(pid)
    time.sleep(0.01)
stop.set()
hung, failed = wait_for(pids, 5)
report(hung=hung, failed=failed)
os._exit(0)
""",
        env=BUFFERED,
    )
    result: dict[str, int] = json.loads(outcome.stdout)
    return result


def test_children_that_print_never_hang_after_install() -> None:
    """A child forked while threads print to sys.stdout and sys.stderr can
    print at once after install()."""
    assert {"hung": 0, "failed": 0} == _print_while_forking("safelog.install()\n")


def test_children_that_print_hang_without_install_comparison() -> None:
    """COMPARISON: without install(), children forked while threads print hang
    on the buffer lock a vanished thread holds (CPython gh-84579)."""
    result = _print_while_forking("")
    assert result["hung"] > 0, result


_PENDING_AT_FORK = """
import json, os, sys, logging
import safelog
{install}
sys.stdout.write("parent text, pending in the text layer|")
sys.stdout.buffer.write(b"parent bytes, pending in the buffer|")
sys.stderr.write("parent partial line on stderr|")
pid = os.fork()
if pid == 0:
    print("child", flush=True)
    print("child", file=sys.stderr, flush=True)
    os._exit(0)
os.waitpid(pid, 0)
"""


@pytest.mark.parametrize("install", ["safelog.install()", ""])
def test_child_never_writes_the_parents_pending_text(install: str) -> None:
    """After install(), bytes and text the parent had buffered at fork are
    written once, by the parent; without it (COMPARISON), twice."""
    outcome = scenario.run_ok(_PENDING_AT_FORK.format(install=install), env=BUFFERED)

    copies = 1 if install else 2
    assert copies == outcome.stdout.count("parent text, pending in the text layer|")
    assert copies == outcome.stdout.count("parent bytes, pending in the buffer|")
    assert copies == outcome.stderr.count("parent partial line on stderr|")
    assert 1 == outcome.stdout.count("child\n")


def test_std_streams_in_the_child_keep_their_attributes() -> None:
    """The child's sys.stdout and sys.stderr are the same objects, with the
    same encoding, errors, line buffering, mode and descriptor."""
    outcome = scenario.run_ok(
        """
import json, os, sys
import safelog
safelog.install()
def describe():
    return [
        [id(s), id(s.buffer), s.encoding, s.errors, s.line_buffering,
         s.write_through, s.mode, s.name, s.fileno()]
        for s in (sys.stdout, sys.stderr)
    ]
parent = describe()
read_end, write_end = os.pipe()
pid = os.fork()
if pid == 0:
    os.write(write_end, json.dumps(describe()).encode())
    os._exit(0)
os.close(write_end)
child = json.loads(os.read(read_end, 65536))
os.waitpid(pid, 0)
print(json.dumps([parent, child]))
""",
        env=BUFFERED,
    )
    parent, child = json.loads(outcome.stdout)
    assert parent == child


def test_std_streams_false_leaves_the_streams_alone_comparison() -> None:
    """COMPARISON: install(std_streams=False) leaves the child's std streams as
    the stdlib does, so the parent's pending text is written twice."""
    outcome = scenario.run_ok(
        _PENDING_AT_FORK.format(install="safelog.install(std_streams=False)"),
        env=BUFFERED,
    )
    assert 2 == outcome.stdout.count("parent text, pending in the text layer|")


def test_last_resort_in_a_child_never_hangs() -> None:
    """With std_streams=False, a child's record that reaches logging.lastResort
    is still written, straight to the descriptor, never through the buffer a
    parent thread held at fork."""
    result = scenario.run_ok(
        _SLOW_PIPE
        + "import logging, safelog\nsafelog.install(std_streams=False)\n"
        + _PRINTING_THREADS
        + """
pids = []
for index in range(10):
    pid = os.fork()
    if pid == 0:
        logging.getLogger("nobody").warning("child %d", index)
        os._exit(0)
    pids.append(pid)
    time.sleep(0.01)
stop.set()
hung, failed = wait_for(pids, 5)
report(hung=hung, failed=failed)
os._exit(0)
""",
        env=BUFFERED,
    )
    assert {"hung": 0, "failed": 0} == json.loads(result.stdout)


def test_os_exit_in_a_child_writes_its_queued_records(tmp_path: Path) -> None:
    """After install(queue=True), a raw fork child that leaves through
    os._exit without safelog.flush() loses none of its records."""
    path = tmp_path / "app.log"
    scenario.run_ok(
        f"""
import logging, os
import safelog
logging.basicConfig(filename={str(path)!r}, level=logging.INFO)
safelog.install(queue=True)
pid = os.fork()
if pid == 0:
    for index in range(500):
        logging.info("child %d", index)
    os._exit(0)
os.waitpid(pid, 0)
"""
    )
    lines = path.read_text().splitlines()
    assert [f"INFO:root:child {index}" for index in range(500)] == lines


def test_uninstall_gives_os_exit_back() -> None:
    """os._exit is wrapped while installed and the original afterwards."""
    original = os._exit
    safelog.install()
    wrapped = os._exit
    safelog.uninstall()
    assert (original, original) == (wrapped.__wrapped__, os._exit)  # type: ignore[attr-defined]


def test_swap_under_logging_threads_loses_and_duplicates_nothing(
    tmp_path: Path,
) -> None:
    """Threads logging through a FileHandler (mode 'w') while install() and
    uninstall() run over and over: every record is in the file once, whole."""
    path = tmp_path / "app.log"
    outcome = scenario.run_ok(
        f"""
import logging, threading, time
import safelog
logger = logging.getLogger("app")
logger.addHandler(logging.FileHandler({str(path)!r}, mode="w"))
logger.propagate = False
stop = threading.Event()
counts = [0, 0, 0]
def log(index):
    while not stop.is_set():
        logger.warning("<%d:%d>", index, counts[index])
        counts[index] += 1
        if counts[index] % 20 == 0:
            time.sleep(0.001)  # let the main thread swap, without a 3-way GIL fight
threads = [threading.Thread(target=log, args=(i,)) for i in range(3)]
for thread in threads:
    thread.start()
for round in range(20):
    safelog.install(queue=round % 2 == 1)
    time.sleep(0.01)
    safelog.uninstall()
    time.sleep(0.01)
stop.set()
for thread in threads:
    thread.join()
logging.shutdown()
print(counts)
"""
    )
    counts = json.loads(outcome.stdout)
    expected = sorted(f"<{i}:{n}>" for i in range(3) for n in range(counts[i]))
    assert expected == sorted(path.read_text().splitlines())


# --- the fork torture: stdlib handlers plus a third-party one ------------------

_TORTURE = (
    _SLOW_PIPE
    + """
import logging, safelog
INSTALL, FORKS, WORKDIR = sys.argv[1] == "1", int(sys.argv[2]), sys.argv[3]
safelog.set_fork_timeout(1.0)

class VendorHandler(logging.Handler):
    # Third-party style: its own buffered file, written and flushed in emit.
    def __init__(self, path):
        super().__init__()
        self.file = open(path, "a", encoding="utf-8")
    def emit(self, record):
        try:
            self.file.write(self.format(record) + "\\n")
            self.file.flush()
        except Exception:
            self.handleError(record)

logging.basicConfig(
    level=logging.INFO,
    format="<<%(message)s>>",
    handlers=[
        logging.FileHandler(os.path.join(WORKDIR, "stdlib.log"), mode="w"),
        logging.StreamHandler(open(os.path.join(WORKDIR, "stream.log"), "w")),
        VendorHandler(os.path.join(WORKDIR, "vendor.log")),
        logging.StreamHandler(sys.stderr),  # the slow pipe; not counted
    ],
)
for handler in logging.root.handlers:
    handler.setFormatter(logging.Formatter("<<%(message)s>>"))
if INSTALL:
    safelog.install(queue=True)
logger = logging.getLogger("app")
stop = threading.Event()
counts = [0, 0]
def log(index):
    while not stop.is_set():
        logger.info("p%d:%d", index, counts[index])
        counts[index] += 1
        time.sleep(0.0002)
threads = [threading.Thread(target=log, args=(i,)) for i in range(2)]
for thread in threads:
    thread.start()
def print_until_stopped():
    while not stop.is_set():
        print("x" * 200, file=sys.stderr)
threading.Thread(target=print_until_stopped, daemon=True).start()
pids = {}
for index in range(FORKS):
    time.sleep(0.02)
    pid = os.fork()
    if pid == 0:
        for record in range(3):
            logger.info("c%d:%d", index, record)
        os._exit(0)  # no safelog.flush(): install() makes that safe
    pids[pid] = index
stop.set()
for thread in threads:
    thread.join()
hung, failed = wait_for(list(pids), 5)
if INSTALL:
    safelog.flush()
logging.shutdown()
report(hung=hung, failed=failed, counts=counts)
os._exit(0)
"""
)


def _torture(install: bool, forks: int, workdir: Path) -> dict[str, int]:
    outcome = scenario.run(
        _TORTURE,
        args=("1" if install else "0", str(forks), str(workdir)),
        env=BUFFERED,
        timeout=120,
    )
    assert not outcome.hung, outcome.describe()
    result = json.loads(outcome.stdout)
    counts = result.pop("counts")
    expected = {f"p{i}:{n}" for i in range(2) for n in range(counts[i])}
    expected |= {f"c{i}:{r}" for i in range(forks) for r in range(3)}
    for name in ("stdlib.log", "stream.log", "vendor.log"):
        lines = (workdir / name).read_text().splitlines()
        whole = [
            line[2:-2]
            for line in lines
            if line.startswith("<<") and line.endswith(">>")
        ]
        result[f"{name} lost"] = len(expected - set(whole))
        result[f"{name} duplicated"] = len(whole) - len(set(whole))
        result[f"{name} torn"] = len(lines) - len(whole)
    return result


def _clean(result: dict[str, int]) -> dict[str, int]:
    return {key: 0 for key in result}


def test_fork_torture_passes_after_install_queue(tmp_path: Path) -> None:
    """Stdlib handlers plus a third-party one, threads logging, 20 forks:
    after install(queue=True), 0 hung, 0 lost, 0 duplicated, 0 torn."""
    result = _torture(True, 20, tmp_path)
    assert _clean(result) == result


def test_fork_torture_fails_without_install_comparison(tmp_path: Path) -> None:
    """COMPARISON: the same program without install() has hung or failing
    children, or lost, duplicated or torn records."""
    result = _torture(False, 20, tmp_path)
    assert _clean(result) != result


@pytest.mark.torture
def test_long_fork_torture_passes_after_install_queue(tmp_path: Path) -> None:
    """The torture with 300 forks: 0 hung, 0 lost, 0 duplicated, 0 torn."""
    result = _torture(True, 300, tmp_path)
    assert _clean(result) == result
