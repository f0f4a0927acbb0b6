"""``safelog.install()`` converts handlers in place: the program's own
references stay the handler, and the fault-injection cases of issue 10."""

from __future__ import annotations

import io
import json
import logging
import logging.handlers
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import safelog
import scenario
from safelog._inplace import CONVERTIBLE


@pytest.fixture(autouse=True)
def _uninstalled() -> Iterator[None]:
    """Every test starts and ends with safelog not installed."""
    safelog.uninstall()
    yield
    safelog.uninstall()


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    """A fresh logger of the test's own, emptied afterwards."""
    named = logging.getLogger(f"safelog.test_install_inplace.{os.urandom(4).hex()}")
    named.propagate = False
    yield named
    safelog.uninstall()
    for handler in named.handlers[:]:
        named.removeHandler(handler)
        handler.close()


# --- the program's references ------------------------------------------------


def test_a_reference_the_program_holds_is_the_converted_handler(
    logger: logging.Logger,
) -> None:
    """After install(), setLevel() and removeHandler() on the program's own
    reference change what is written: it is the converted handler, with its
    lock, name and filters."""
    written = io.StringIO()
    handler = logging.StreamHandler(written)
    handler.set_name("console")
    only_app = logging.Filter(logger.name)
    handler.addFilter(only_app)
    lock = handler.lock
    logger.addHandler(handler)

    safelog.install()
    handler.setLevel(logging.ERROR)
    logger.warning("below the level set after install")
    logger.error("shown")
    logger.removeHandler(handler)
    logger.error("after removeHandler")

    assert "shown\n" == written.getvalue()
    assert (safelog.StreamHandler, lock, [only_app]) == (
        type(handler),
        handler.lock,
        handler.filters,
    )
    assert handler is logging._handlers["console"]  # type: ignore[attr-defined]


def test_uninstall_gives_the_standard_class_back_in_place(
    logger: logging.Logger, tmp_path: Path
) -> None:
    """uninstall() leaves the same objects in the lists, each of its standard
    class again, still writing to its file."""
    path = tmp_path / "app.log"
    rotating = logging.handlers.RotatingFileHandler(path, maxBytes=10_000)
    console = logging.StreamHandler(io.StringIO())
    logger.handlers[:] = [rotating, console]

    safelog.install()
    converted = [type(handler) for handler in logger.handlers]
    logger.warning("while installed")
    safelog.uninstall()
    logger.warning("after")

    assert [safelog.RotatingFileHandler, safelog.StreamHandler] == converted
    assert [rotating, console] == logger.handlers
    assert [logging.handlers.RotatingFileHandler, logging.StreamHandler] == [
        type(handler) for handler in logger.handlers
    ]
    assert "while installed\nafter\n" == path.read_text()


def test_closed_handler_still_on_a_logger_is_converted(
    logger: logging.Logger, tmp_path: Path
) -> None:
    """A handler closed but still attached (what dictConfig leaves behind,
    gunicorn's error log) is live: it is converted, not left alone."""
    path = tmp_path / "error.log"
    handler = logging.FileHandler(path)
    logger.addHandler(handler)
    handler.close()
    subject = repr(handler)

    report = safelog.install()
    logger.warning("after install")

    assert safelog.FileHandler is type(handler)
    assert "after install\n" == path.read_text()
    if sys.version_info >= (3, 10):  # Handler._closed is new in 3.10
        assert "closed, but still on a logger" in next(
            entry.reason for entry in report.changed if entry.subject == subject
        )


def test_handler_dictconfig_closed_is_converted(tmp_path: Path) -> None:
    """gunicorn's case: a handler on "gunicorn.error" that a later
    dictConfig closed but left attached is converted."""
    path = tmp_path / "error.log"
    outcome = scenario.run_ok(
        f"""
import json, logging, logging.config
import safelog
error_log = logging.getLogger("gunicorn.error")
error_log.propagate = False
handler = logging.FileHandler({str(path)!r})
error_log.addHandler(handler)
logging.config.dictConfig({{"version": 1, "disable_existing_loggers": False}})
closed_by_dictconfig = handler.stream is None
safelog.install()
print(json.dumps([closed_by_dictconfig, type(handler).__module__]))
"""
    )
    assert [True, "safelog._handlers"] == json.loads(outcome.stdout)


def test_uninstall_after_a_second_dictconfig_keeps_the_live_handler_named(
    tmp_path: Path,
) -> None:
    """uninstall() after the program reconfigured leaves
    logging._handlers["file"] on the second configuration's open handler,
    not on the closed one of the first."""
    outcome = scenario.run_ok(
        f"""
import json, logging, logging.config
import safelog
def config(path):
    return {{
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {{"file": {{"class": "logging.FileHandler", "filename": path}}}},
        "loggers": {{"app": {{"handlers": ["file"], "propagate": False}}}},
    }}
logging.config.dictConfig(config({str(tmp_path / "first.log")!r}))
safelog.install()
logging.config.dictConfig(config({str(tmp_path / "second.log")!r}))
safelog.uninstall()
named = logging._handlers["file"]
print(json.dumps([
    named.baseFilename,
    named.stream is None,  # closed
    logging.getLogger("app").handlers == [named],
]))
"""
    )
    assert [str(tmp_path / "second.log"), False, True] == json.loads(outcome.stdout)


# --- logging.lastResort ---------------------------------------------------------


@pytest.mark.parametrize("installed", [False, True])
def test_last_resort_stream_is_read_only_and_follows_stderr(
    installed: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """logging.lastResort.stream is whatever sys.stderr is, and assigning it
    raises AttributeError, with safelog's handler as with the standard one."""
    if installed:
        safelog.install()
    last_resort = logging.lastResort
    assert last_resort is not None
    replacement = io.StringIO()
    monkeypatch.setattr(sys, "stderr", replacement)

    with pytest.raises(AttributeError):
        last_resort.stream = io.StringIO()  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        last_resort.setStream(io.StringIO())  # type: ignore[attr-defined]
    assert replacement is last_resort.stream  # type: ignore[attr-defined]
    assert installed == isinstance(last_resort, safelog.StreamHandler)


# --- the report -------------------------------------------------------------------


def test_report_lists_each_handler_once_and_counts_handlers(
    logger: logging.Logger,
) -> None:
    """With queue=True, a handler that is not converted has one entry, and the
    headline counts handlers, not the globals install() changed."""
    vendor = logging.Handler()
    console = logging.StreamHandler(io.StringIO())
    logger.handlers[:] = [vendor, console]

    report = safelog.install(queue=True)

    entries = [*report.changed, *report.left_alone]
    for handler in (vendor, console):
        assert 1 == sum(1 for entry in entries if entry.subject == repr(handler))
    handlers_met = sum(1 for entry in entries if entry.loggers)
    converted = sum(1 for entry in report.changed if entry.loggers)
    assert str(report).splitlines()[0] == (
        f"safelog installed: {converted} of {handlers_met} handlers converted, "
        f"{handlers_met - converted} left alone."
    )


def test_memory_handler_subclass_is_reported_with_its_fork_hazard(
    logger: logging.Logger,
) -> None:
    """A MemoryHandler subclass, which safelog cannot know, is left alone
    with its hazard in the report: the records it buffers at fork are
    written by both processes."""

    class Buffer(logging.handlers.MemoryHandler):
        pass

    memory = Buffer(100, target=logging.NullHandler())
    logger.addHandler(memory)

    report = safelog.install(queue=True)

    reason = next(
        entry.reason for entry in report.left_alone if entry.subject == repr(memory)
    )
    assert "copied into the child, so both processes write them" in reason


def test_memory_handler_records_buffered_at_fork_are_written_once(
    tmp_path: Path,
) -> None:
    """After install(queue=True), records a MemoryHandler buffered before a
    fork are written once, by the parent, not again by the child; the child's
    own records are written."""
    path = tmp_path / "app.log"
    outcome = scenario.run_ok(
        f"""
import json, logging, logging.handlers, os
import safelog
target = logging.FileHandler({str(path)!r})
memory = logging.handlers.MemoryHandler(100, target=target)
logger = logging.getLogger("app")
logger.propagate = False
logger.addHandler(memory)
report = safelog.install(queue=True)
for index in range(3):
    logger.warning("parent %d", index)
# No safelog.flush() here, which flushes the MemoryHandler too: the fork
# waits for the writer thread to hand the queued records to it.
pid = os.fork()
if pid == 0:
    logger.warning("child")
    safelog.flush()
    memory.flush()
    os._exit(0)
os.waitpid(pid, 0)
memory.flush()
entry = next(e for e in report.changed if e.subject == repr(memory))
print(json.dumps(entry.reason))
"""
    )
    assert ["child", "parent 0", "parent 1", "parent 2"] == sorted(
        path.read_text().splitlines()
    )
    assert "the child starts with an empty buffer" in json.loads(outcome.stdout)


# --- threads and forks during install() -----------------------------------------


def test_rotating_straggler_paused_across_install_loses_nothing(
    tmp_path: Path,
) -> None:
    """A thread that picked a RotatingFileHandler before install() and rolls
    the file over after it, paused where the standard rollover removes
    ".1", deletes no backup another thread made meanwhile: every record is
    in the files once."""
    path = tmp_path / "app.log"
    outcome = scenario.run_ok(
        f"""
import glob, json, logging, logging.handlers, threading
import safelog
PATH = {str(path)!r}
handler = logging.handlers.RotatingFileHandler(PATH, maxBytes=300, backupCount=50)
handler.setFormatter(logging.Formatter("%(message)s"))
in_filter, installed, writer_done = (threading.Event() for _ in range(3))

def hold_the_straggler(record):
    # Runs in handle() before the handler lock: the straggler has picked
    # the handler from the list, and waits until install() is done.
    if record.getMessage().startswith("straggler"):
        in_filter.set()
        installed.wait(10)
    return True

ones = []
def namer(name):
    # The second ".1" of a rollover is the backup the standard code
    # removes if it exists; pause the straggler there while the writer logs
    # (a converted handler keeps the writer out: the wait times out).
    if threading.current_thread().name == "straggler" and name.endswith(".1"):
        ones.append(name)
        if len(ones) == 2:
            writer_done.wait(2)
    return name

handler.addFilter(hold_the_straggler)
handler.namer = namer
logger = logging.getLogger("app")
logger.propagate = False
logger.addHandler(handler)
logger.warning("first")  # not empty: the straggler's long record rolls over
straggler = threading.Thread(
    target=logger.warning, args=("straggler " + "s" * 300,), name="straggler"
)
straggler.start()
in_filter.wait(10)
safelog.install()
installed.set()
def write():
    for index in range(40):
        logger.warning("record %d %s", index, "r" * 40)
    writer_done.set()
writer = threading.Thread(target=write)
writer.start()
writer.join()
straggler.join()
safelog.uninstall()
logger.warning("last")
handler.close()
lines = []
for name in glob.glob(PATH + "*"):
    if not name.endswith(".lock"):
        with open(name) as file:
            lines += file.read().splitlines()
print(json.dumps(sorted(lines)))
"""
    )
    expected = ["first", "straggler " + "s" * 300, "last"]
    expected += [f"record {index} {'r' * 40}" for index in range(40)]
    assert sorted(expected) == json.loads(outcome.stdout)


def test_rotating_swaps_under_logging_threads_lose_nothing(tmp_path: Path) -> None:
    """Threads logging through a RotatingFileHandler while install() and
    uninstall() run over and over: every record is in the files once."""
    path = tmp_path / "app.log"
    outcome = scenario.run_ok(
        f"""
import glob, json, logging, logging.handlers, threading, time
import safelog
PATH = {str(path)!r}
# Enough backups that none is deleted by the rotation itself.
handler = logging.handlers.RotatingFileHandler(PATH, maxBytes=3000, backupCount=500)
logger = logging.getLogger("app")
logger.addHandler(handler)
logger.propagate = False
stop = threading.Event()
counts = [0, 0, 0]
def log(index):
    while not stop.is_set():
        logger.warning("<%d:%d>", index, counts[index])
        counts[index] += 1
        if counts[index] % 20 == 0:
            time.sleep(0.001)
threads = [threading.Thread(target=log, args=(i,)) for i in range(3)]
for thread in threads:
    thread.start()
for round in range(20):
    safelog.install()
    time.sleep(0.01)
    safelog.uninstall()
    time.sleep(0.01)
stop.set()
for thread in threads:
    thread.join()
handler.close()
lines = []
for name in glob.glob(PATH + "*"):
    if not name.endswith(".lock"):
        with open(name) as file:
            lines += file.read().splitlines()
print(json.dumps([counts, lines]))
"""
    )
    counts, lines = json.loads(outcome.stdout)
    expected = sorted(f"<{i}:{n}>" for i in range(3) for n in range(counts[i]))
    assert expected == sorted(lines)


# A thread keeps a handler busy (its lock held, for up to 4 s, until
# `release`) while another thread's install() waits for that handler.
_INSTALL_WAITS_FOR_A_BUSY_HANDLER = """
import json, logging, os, threading, time, warnings
warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork with threads
import safelog
from safelog._harness import wait_for_children
inside, release = threading.Event(), threading.Event()
class Slow(logging.Formatter):
    def format(self, record):
        if record.getMessage() == "slow":
            inside.set()
            release.wait(4)  # holds the handler lock meanwhile
        return super().format(record)
handler = logging.StreamHandler(open(os.devnull, "w"))
handler.setFormatter(Slow())
logger = logging.getLogger("app")
logger.propagate = False
logger.addHandler(handler)
busy = threading.Thread(target=logger.warning, args=("slow",))
busy.start()
inside.wait(10)
installer = threading.Thread(target=safelog.install)
installer.start()
time.sleep(0.5)  # install() is waiting for the handler by now
"""


def test_install_holds_no_logging_lock_while_a_handler_is_busy() -> None:
    """While install() waits for a handler another thread keeps busy,
    getLogger() and fork() in other threads do not wait for it."""
    outcome = scenario.run_ok(
        _INSTALL_WAITS_FOR_A_BUSY_HANDLER
        + """
start = time.monotonic()
logging.getLogger("created.meanwhile")
get_logger = time.monotonic() - start
start = time.monotonic()
pid = os.fork()
if pid == 0:
    os._exit(0)
fork = time.monotonic() - start
os.waitpid(pid, 0)
release.set()
busy.join()
installer.join()
print(json.dumps([get_logger, fork, type(handler).__module__]))
"""
    )
    get_logger, fork, module = json.loads(outcome.stdout)
    assert (True, True, "safelog._handlers") == (get_logger < 1, fork < 1, module)


_FORKED_CHILD_INSTALLS = """
import fcntl, json, logging, os, sys, termios, threading, time, warnings
warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork with threads
import struct
import safelog
from safelog._harness import wait_for_children
read_end, write_end = os.pipe()
stream = os.fdopen(write_end, "w")  # buffered, as a log pipe is
handler = logging.StreamHandler(stream)
handler.setFormatter(logging.Formatter("%(message)s"))
logger = logging.getLogger("app")
logger.propagate = False
logger.addHandler(handler)
# Nobody reads the pipe yet: this thread blocks in the stream's write,
# holding the stream's buffer lock (and the handler lock).
blocked = threading.Thread(
    target=logger.warning, args=("parent " + "p" * 200000,), daemon=True
)
blocked.start()
capacity = fcntl.fcntl(read_end, 1032)  # F_GETPIPE_SZ
def pending():
    return struct.unpack("i", fcntl.ioctl(read_end, termios.FIONREAD, b"0000"))[0]
deadline = time.monotonic() + 10
while pending() < capacity and time.monotonic() < deadline:
    time.sleep(0.01)
pid = os.fork()
if pid == 0:
    safelog.install()  # a post_fork hook
    logger.warning("child record")
    os._exit(0)
chunks = []
def drain():
    while True:
        chunk = os.read(read_end, 65536)
        if not chunk:
            return
        chunks.append(chunk)
drainer = threading.Thread(target=drain)
drainer.start()
hung = wait_for_children({pid: time.monotonic() + 10})[pid] is None
blocked.join()
stream.close()  # the last write end: the drainer reads to the end
drainer.join()
text = b"".join(chunks).decode()
# A write longer than PIPE_BUF may interleave with the child's: count bytes.
print(json.dumps([hung, text.count("child record\\n"), text.count("p")]))
"""


def test_install_in_a_child_forked_while_a_thread_held_the_stream() -> None:
    """install() in a child forked while a parent thread was inside the
    handler's stream write neither hangs nor writes the parent's record
    again; the child's record is written once."""
    outcome = scenario.run_ok(_FORKED_CHILD_INSTALLS, env={"PYTHONUNBUFFERED": None})
    # "parent " has one "p", then 200000 of them: written once, by the parent.
    assert [False, 1, 1 + 200000] == json.loads(outcome.stdout)


def test_install_in_a_child_forked_while_a_parent_thread_was_in_install() -> None:
    """A child forked while a parent thread was inside install() (waiting for
    a busy handler) can call install() itself: it does not wait for the
    parent thread's locks."""
    outcome = scenario.run_ok(
        _INSTALL_WAITS_FOR_A_BUSY_HANDLER
        + """
pid = os.fork()
if pid == 0:
    safelog.install()
    logger.warning("child")
    os._exit(0 if type(handler) is safelog.StreamHandler else 1)
status = wait_for_children({pid: time.monotonic() + 10})[pid]
release.set()
busy.join()
installer.join()
print(json.dumps(status))
"""
    )
    assert 0 == json.loads(outcome.stdout)


# --- what a converted handler carries ------------------------------------------

# One handler of each class install() converts, with the arguments to make it.
_CONVERTIBLE = {
    "FileHandler": (logging.FileHandler, ("a.log",)),
    "StreamHandler": (logging.StreamHandler, ()),
    "RotatingFileHandler": (logging.handlers.RotatingFileHandler, ("r.log", "a", 100)),
    "TimedRotatingFileHandler": (logging.handlers.TimedRotatingFileHandler, ("t.log",)),
    "WatchedFileHandler": (logging.handlers.WatchedFileHandler, ("w.log",)),
    "SocketHandler": (logging.handlers.SocketHandler, ("127.0.0.1", 9)),
    "DatagramHandler": (logging.handlers.DatagramHandler, ("127.0.0.1", 9)),
    "SysLogHandler": (logging.handlers.SysLogHandler, ()),
}


def test_the_attribute_check_covers_every_class_install_converts() -> None:
    """The check below has a handler of every standard class install()
    converts: a class added there is checked too."""
    assert set(CONVERTIBLE) == {
        f"{standard.__module__}.{standard.__qualname__}"
        for standard, _ in _CONVERTIBLE.values()
    }


@pytest.mark.parametrize("name", sorted(_CONVERTIBLE))
def test_converted_handler_carries_what_a_new_one_has(
    name: str, logger: logging.Logger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A converted handler has every instance attribute a new safelog
    handler of its class has, of the same type, and none its class does not
    know (install() gives it the class's _safelog_state, as __init__ does); one
    that is given its standard class back still runs safelog's handle(): a
    thread may have entered it just before uninstall()."""
    monkeypatch.chdir(tmp_path)
    standard, args = _CONVERTIBLE[name]
    handler = standard(*args)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    standard_attributes = set(vars(handler))
    safelog.install()
    safelog_class = getattr(safelog, name)
    assert safelog_class is type(handler)
    fresh = safelog_class(*[f"new-{a}" if str(a).endswith(".log") else a for a in args])
    try:
        converted, new = vars(handler), vars(fresh)
        added = set(converted) - standard_attributes
        assert set() == set(new) - set(converted)
        assert {} == {
            key: (type(converted[key]), type(new[key]))
            for key in added & set(new)
            if type(converted[key]) is not type(new[key])
        }
        # The rest are the class's defaults, kept on the instance for a
        # thread still inside safelog's handle() after uninstall().
        assert {} == {
            key: converted[key]
            for key in added - set(new)
            if getattr(safelog_class, key, object()) != converted[key]
        }
    finally:
        fresh.close()
    safelog.uninstall()
    assert standard is type(handler)
    safelog_class.handle(handler, logging.makeLogRecord({"msg": "straggler"}))
