"""safelog.QueueHandler under faults: targets that raise anything or fork,
formatters that fail, signal handlers that log or fork during a fork, Ctrl-C
in close(), and children that leave through os._exit().

Each scenario that could hang runs in a child interpreter with a hard
deadline (``scenario.run_ok``) and prints what it found as JSON.
"""

from __future__ import annotations

import json
import logging
import logging.config
import pathlib
import sys

import pytest

import safelog
from scenario import run_ok

# Writes what the scenario found as the last line of stdout.
REPORT = """
import json
def report(**found):
    print(json.dumps(found), flush=True)
"""


def found_in(outcome_stdout: str) -> dict[str, object]:
    return json.loads(outcome_stdout.splitlines()[-1])  # type: ignore[no-any-return]


# -- targets that fail ----------------------------------------------------------


@pytest.mark.parametrize("raised", ["SystemExit", "KeyboardInterrupt", "Custom"])
def test_target_raising_base_exception_costs_no_record(raised: str) -> None:
    """A target whose emit raises SystemExit, KeyboardInterrupt or another
    BaseException: the other target gets every record, the failure goes to
    the failing target's handleError, the writer lives on, and a flush()
    taken in the same batch returns."""
    outcome = run_ok(
        REPORT
        + f"""
import logging, sys, threading, safelog
class Custom(BaseException):
    pass
class Failing(logging.Handler):
    errors = []
    def emit(self, record):
        if record.getMessage().startswith("bad"):
            raise {raised}("from emit")
    def handleError(self, record):
        self.errors.append((type(sys.exc_info()[1]).__name__, record.getMessage()))
class Gate(logging.Handler):
    def __init__(self):
        super().__init__()
        self.entered, self.open = threading.Event(), threading.Event()
    def emit(self, record):
        self.entered.set()
        self.open.wait(10)
good = []
class Good(logging.Handler):
    def emit(self, record):
        good.append(record.getMessage())
gate, failing = Gate(), Failing()
queued = safelog.QueueHandler([gate, failing, Good()])
log = logging.getLogger("f"); log.addHandler(queued); log.propagate = False
log.warning("hold")
gate.entered.wait(10)
for i in range(5):
    log.warning("bad %d", i)
    log.warning("fine %d", i)
flusher = threading.Thread(target=queued.flush)
flusher.start()  # its barrier is taken right after the batch above
gate.open.set()
flusher.join(10)
writer = queued._state.writer
report(good=good, errors=failing.errors, flushed=not flusher.is_alive(),
       writer_alive=writer is not None and writer.is_alive())
""",
        timeout=30,
    )
    found = found_in(outcome.stdout)
    expected = ["hold"] + [f"{kind} {i}" for i in range(5) for kind in ("bad", "fine")]
    assert expected == found["good"]
    name = raised
    assert [[name, f"bad {i}"] for i in range(5)] == found["errors"]
    assert found["flushed"] is True
    assert found["writer_alive"] is True


def test_failing_formatter_touches_its_target_only() -> None:
    """Each target renders a record's exception with its own formatter; one
    whose formatException raises costs its own target that record (reported
    to its handleError), not the other targets."""

    class BrokenFormatter(logging.Formatter):
        def formatException(self, ei: object) -> str:
            raise RuntimeError("cannot render")

    class Collecting(logging.Handler):
        def __init__(self, formatter: logging.Formatter) -> None:
            super().__init__()
            self.setFormatter(formatter)
            self.lines: list[str] = []
            self.errors: list[str] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.lines.append(self.format(record))

        def handleError(self, record: logging.LogRecord) -> None:
            self.errors.append(str(sys.exc_info()[1]))

    class Marked(logging.Formatter):
        def formatException(self, ei: object) -> str:
            return "MARKED " + super().formatException(ei).splitlines()[-1]  # type: ignore[arg-type]

    broken = Collecting(BrokenFormatter("%(message)s"))
    plain = Collecting(logging.Formatter("%(message)s"))
    marked = Collecting(Marked("%(message)s"))
    handler = safelog.QueueHandler([broken, plain, marked])
    try:
        raise ValueError("boom")
    except ValueError:
        exc_info = sys.exc_info()
    # Handed over directly: another handler on a logger (pytest's) would
    # render the exception first, and every later handler reuse its text.
    for message, error in (("failed", exc_info), ("after", None)):
        handler.handle(
            logging.makeLogRecord(
                {"msg": message, "levelno": logging.ERROR, "exc_info": error}
            )
        )
    handler.flush()
    assert ["after"] == broken.lines
    assert ["cannot render"] == broken.errors
    assert 2 == len(plain.lines)
    assert plain.lines[0].startswith("failed\nTraceback (most recent call last):")
    assert plain.lines[0].endswith("ValueError: boom")
    assert ["failed\nMARKED ValueError: boom", "after"] == marked.lines


@pytest.fixture
def logger() -> logging.Logger:
    """A logger of its own, not propagating, at DEBUG."""
    named = logging.getLogger(f"test_queue_faults.{id(object())}")
    named.setLevel(logging.DEBUG)
    named.propagate = False
    return named


# -- a single name or handler ---------------------------------------------------


def test_single_name_or_handler_is_one_target(logger: logging.Logger) -> None:
    """QueueHandler("console") and QueueHandler(handler) take one target, not
    one per character of the name."""
    lines: list[str] = []

    class Collecting(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    console = Collecting()
    console.set_name("test-queue-faults-console")
    try:
        by_name = safelog.QueueHandler("test-queue-faults-console")
        by_object = safelog.QueueHandler(console)
        assert (console,) == by_name.targets
        assert (console,) == by_object.targets
        logger.addHandler(by_name)
        logger.addHandler(by_object)
        logger.warning("once each")
        by_name.flush()
        by_object.flush()
        assert ["once each", "once each"] == lines
    finally:
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
            handler.close()


def test_dictconfig_handlers_as_one_name(tmp_path: pathlib.Path) -> None:
    """In dictConfig, "handlers": "file" names one target."""
    path = tmp_path / "one.log"
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": {
                "async": {"class": "safelog.QueueHandler", "handlers": "file"},
                "file": {"class": "safelog.FileHandler", "filename": str(path)},
            },
            "loggers": {"test_queue_faults.dict": {"handlers": ["async"]}},
        }
    )
    logged = logging.getLogger("test_queue_faults.dict")
    try:
        logged.warning("through one name")
        safelog.flush()
        assert "through one name\n" == path.read_text()
    finally:
        for handler in list(logged.handlers):
            logged.removeHandler(handler)
            handler.close()


@pytest.mark.parametrize("handlers", [42, None, [logging.NullHandler(), 3]])
def test_handlers_of_wrong_type_rejected(handlers: object) -> None:
    """Anything but a handler, a name, or a list of them raises TypeError
    naming the parameter."""
    with pytest.raises(TypeError, match="handlers must be"):
        safelog.QueueHandler(handlers)  # type: ignore[arg-type]


# -- signal handlers and fork ---------------------------------------------------


def test_block_signal_handler_logging_during_fork_hooks() -> None:
    """overflow="block": a signal handler that logs while its own thread is
    inside os.fork()'s before-fork hooks, with the queue filled by another
    thread and the writer stopped for the fork, does not wait for ever."""
    outcome = run_ok(
        REPORT
        + """
import logging, os, signal, threading, time
from safelog import _atfork
class Raising:
    # Registered before the queue handler, so its before step runs after
    # the queue handler's (newest first): the writer is stopped by then.
    def before_fork(self, deadline):
        signal.raise_signal(signal.SIGUSR1)
    def after_fork_in_parent(self):
        pass
    def after_fork_in_child(self):
        pass
raising = Raising()
_atfork.register(raising)
import safelog
safelog.set_fork_timeout(1.0)
seen = []
class Slow(logging.Handler):
    def emit(self, record):
        seen.append(record.getMessage())
        time.sleep(0.001)
queued = safelog.QueueHandler([Slow()], maxsize=20, overflow="block")
log = logging.getLogger("b"); log.addHandler(queued); log.propagate = False
signal.signal(signal.SIGUSR1, lambda signum, frame: log.warning("from the signal"))
stop = threading.Event()
def flood():
    i = 0
    while not stop.is_set():
        log.warning("flood %d", i)
        i += 1
flooder = threading.Thread(target=flood)
flooder.start()
while queued._state.items.qsize() < 20:
    time.sleep(0.001)
pid = os.fork()
if pid == 0:
    os._exit(0)
os.waitpid(pid, 0)
stop.set()
flooder.join()
queued.flush()
report(signal_records=seen.count("from the signal"))
""",
        timeout=30,
    )
    assert 1 == found_in(outcome.stdout)["signal_records"]


def test_close_interrupted_by_ctrl_c_leaves_callers_unhurt(
    tmp_path: pathlib.Path,
) -> None:
    """KeyboardInterrupt arriving while close() waits for a busy writer: log
    calls from other threads afterwards do not wait, and a second close()
    writes everything."""
    path = tmp_path / "out.log"
    outcome = run_ok(
        REPORT
        + f"""
import logging, os, signal, threading, time, safelog
class Slow(safelog.FileHandler):
    def emit(self, record):
        if record.getMessage() == "slow":
            time.sleep(1.0)
        super().emit(record)
target = Slow({str(path)!r})
target.setFormatter(logging.Formatter("%(message)s"))
queued = safelog.QueueHandler([target])
log = logging.getLogger("c"); log.addHandler(queued); log.propagate = False
log.warning("slow")
for i in range(3):
    log.warning("before %d", i)
threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT)).start()
try:
    queued.close()
    interrupted = False
except KeyboardInterrupt:
    interrupted = True
took = []
def later():
    for i in range(3):
        started = time.monotonic()
        log.warning("after %d", i)
        took.append(time.monotonic() - started)
caller = threading.Thread(target=later)
caller.start()
caller.join(30)
queued.close()
report(interrupted=interrupted, took=took)
""",
        timeout=60,
    )
    found = found_in(outcome.stdout)
    assert found["interrupted"] is True
    took = found["took"]
    assert isinstance(took, list) and 3 == len(took)
    assert max(took) < 2.0  # not the 5 s each they waited before
    expected = ["slow"] + [f"before {i}" for i in range(3)]
    expected += [f"after {i}" for i in range(3)]
    assert expected == path.read_text().splitlines()


def test_drop_report_written_before_flush_returns(tmp_path: pathlib.Path) -> None:
    """The "records dropped" warning is written by the time flush() returns,
    even while the queue is still more than half full, so a process that
    flushes and leaves through os._exit() keeps it."""
    path = tmp_path / "out.log"
    run_ok(
        f"""
import logging, os, threading, time, safelog
class Gated(safelog.FileHandler):
    entered, gate = threading.Event(), threading.Event()
    def emit(self, record):
        self.entered.set()
        self.gate.wait(10)
        super().emit(record)
target = Gated({str(path)!r})
target.setFormatter(logging.Formatter("%(message)s"))
queued = safelog.QueueHandler([target], maxsize=10, overflow="drop_old")
log = logging.getLogger("d"); log.addHandler(queued); log.propagate = False
log.warning("hold")
Gated.entered.wait(10)
flusher = threading.Thread(target=queued.flush)
flusher.start()
while queued._state.items.qsize() < 1:  # its barrier, behind "hold"
    time.sleep(0.001)
for i in range(15):  # the last 5 push out records logged after the barrier
    log.warning("r%d", i)
Gated.gate.set()
flusher.join(10)
os._exit(0)
""",
        timeout=30,
    )
    lines = path.read_text().splitlines()
    assert "hold" == lines[0]
    assert (
        "safelog.QueueHandler dropped 5 record(s): queue full "
        "(maxsize=10, overflow='drop_old')"
    ) in lines


def test_target_forking_on_the_writer(tmp_path: pathlib.Path) -> None:
    """A target whose emit forks on the writer thread (a multiprocessing
    Process started there, a raw fork whose child returns from emit): no
    error from the fork hook, the child does not go on writing the parent's
    records, and the parent's wait for it ends."""
    path = tmp_path / "out.log"
    outcome = run_ok(
        REPORT
        + f"""
import logging, multiprocessing, os, time, warnings, safelog
# 3.12+ warns that fork() with threads may deadlock: what is tested here
warnings.filterwarnings("ignore", category=DeprecationWarning)
children = []
class Forking(logging.Handler):
    def emit(self, record):
        if record.getMessage() == "fork raw":
            pid = os.fork()
            if pid == 0:
                return  # the child returns into the writer
            children.append(pid)
        elif record.getMessage() == "fork mp":
            process = multiprocessing.get_context("fork").Process(target=print)
            process.start()
            process.join()
target = safelog.FileHandler({str(path)!r})
target.setFormatter(logging.Formatter("%(process)d %(message)s"))
queued = safelog.QueueHandler([Forking(), target])
log = logging.getLogger("w"); log.addHandler(queued); log.propagate = False
for message in ("a", "fork raw", "b", "fork mp", "c"):
    log.warning(message)
    time.sleep(0.05)
queued.flush()
waited = []
for pid in children:
    give_up = time.monotonic() + 10
    while not os.waitpid(pid, os.WNOHANG)[0]:
        if time.monotonic() > give_up:
            os.kill(pid, 9)
            waited.append("hung")
            break
        time.sleep(0.01)
    else:
        waited.append("ended")
report(pid=os.getpid(), waited=waited)
""",
        timeout=60,
    )
    found = found_in(outcome.stdout)
    assert ["ended"] == found["waited"]
    assert "cannot join current thread" not in outcome.stderr
    assert "Logging error" not in outcome.stderr
    lines = path.read_text().splitlines()
    expected = [f"{found['pid']} {m}" for m in ("a", "fork raw", "b", "fork mp", "c")]
    assert expected == lines


# -- children that leave through os._exit ---------------------------------------


def test_raw_fork_children_os_exit_lose_nothing(tmp_path: pathlib.Path) -> None:
    """Raw os.fork() children that log through a QueueHandler and leave
    through os._exit(), with no safelog.flush() and no install(), while a
    parent thread logs: every child record is written, once."""
    path = tmp_path / "out.log"
    outcome = run_ok(
        REPORT
        + f"""
import logging, os, threading, time, warnings, safelog
# 3.12+ warns that fork() with threads may deadlock: what is tested here
warnings.filterwarnings("ignore", category=DeprecationWarning)
target = safelog.FileHandler({str(path)!r})
target.setFormatter(logging.Formatter("%(message)s"))
log = logging.getLogger("x"); log.addHandler(safelog.QueueHandler([target]))
log.propagate = False
stop = threading.Event()
def parent_logging():
    i = 0
    while not stop.is_set():
        log.warning("parent %d", i)
        i += 1
        time.sleep(0.0001)
thread = threading.Thread(target=parent_logging)
thread.start()
pids = []
for child in range(50):
    pid = os.fork()
    if pid == 0:
        for record in range(20):
            log.warning("child %d %d", child, record)
        os._exit(0)
    pids.append(pid)
for pid in pids:
    os.waitpid(pid, 0)
stop.set()
thread.join()
report(done=True)
""",
        timeout=60,
    )
    assert found_in(outcome.stdout)["done"] is True
    lines = path.read_text().splitlines()
    children = [line for line in lines if line.startswith("child ")]
    expected = {f"child {c} {r}" for c in range(50) for r in range(20)}
    assert expected == set(children)
    assert len(expected) == len(children)
