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


# A queue handler whose target writes each message, as a line, to a pipe
# that the scenario reads after the forked child it runs (`in_child()`) ends.
PIPE_CHILD = """
import logging, os, signal, threading, safelog
read_end, write_end = os.pipe()
class Pipe(logging.Handler):
    def emit(self, record):
        os.write(write_end, (record.getMessage() + "\\n").encode())
handler = safelog.QueueHandler(Pipe())
log = logging.getLogger("pipe"); log.addHandler(handler); log.propagate = False
def run_child_and_report():
    pid = os.fork()
    if pid == 0:
        try:
            in_child()
        finally:
            os._exit(0)
    os.close(write_end)
    received = b""
    while chunk := os.read(read_end, 65536):
        received += chunk
    os.waitpid(pid, 0)
    report(lines=received.decode().splitlines())
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


# -- a single handler, a single name ------------------------------------------


def test_single_handler_is_one_target(logger: logging.Logger) -> None:
    """QueueHandler(handler) takes that one handler as its target."""
    lines: list[str] = []

    class Collecting(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    target = Collecting()
    handler = safelog.QueueHandler(target)
    logger.addHandler(handler)
    try:
        assert (target,) == handler.targets
        logger.warning("once")
        handler.flush()
        assert ["once"] == lines
    finally:
        logger.removeHandler(handler)
        handler.close()


def test_single_name_is_refused_naming_the_parameter() -> None:
    """QueueHandler("console") raises TypeError naming `handlers` instead of
    taking one target per character."""
    with pytest.raises(TypeError, match=r"handlers must be a list .*\['console'\]"):
        safelog.QueueHandler("console")  # type: ignore[arg-type]


def test_dictconfig_handlers_as_one_name_fails_configuration(
    tmp_path: pathlib.Path,
) -> None:
    """In dictConfig, "handlers": "file" fails the configuration, naming
    the handler, with the TypeError as its cause."""
    with pytest.raises(ValueError, match="Unable to configure handler 'async'") as info:
        logging.config.dictConfig(
            {
                "version": 1,
                "disable_existing_loggers": False,
                "handlers": {
                    "async": {"class": "safelog.QueueHandler", "handlers": "file"},
                    "file": {
                        "class": "safelog.FileHandler",
                        "filename": str(tmp_path / "one.log"),
                    },
                },
            }
        )
    assert isinstance(info.value.__cause__, TypeError)
    assert "handlers must be a list" in str(info.value.__cause__)


@pytest.mark.parametrize("handlers", [42, None, [logging.NullHandler(), 3]])
def test_handlers_of_wrong_type_rejected(handlers: object) -> None:
    """Anything but a handler, or a list of handlers and names, raises
    TypeError naming the parameter."""
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
# SIGINT may be ignored from birth (a suite started in the background by a
# shell without job control); this scenario needs Python's own handler.
signal.signal(signal.SIGINT, signal.default_int_handler)
busy = threading.Event()
class Slow(safelog.FileHandler):
    def emit(self, record):
        if record.getMessage() == "slow":
            busy.set()
            time.sleep(1.0)
        super().emit(record)
target = Slow({str(path)!r})
target.setFormatter(logging.Formatter("%(message)s"))
queued = safelog.QueueHandler([target])
log = logging.getLogger("c"); log.addHandler(queued); log.propagate = False
log.warning("slow")
for i in range(3):
    log.warning("before %d", i)
# close() must find the writer busy: on a loaded machine it may not have
# started yet, and close() would then write "slow" itself.
assert busy.wait(10)
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
from safelog._harness import wait_for_children
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
codes = wait_for_children(dict.fromkeys(children, time.monotonic() + 10))
waited = ["hung" if codes[pid] is None else "ended" for pid in children]
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


# -- the consumer: one at a time, and never waiting for itself -----------------


def test_signal_handler_flush_in_an_inline_child_writes_each_record_once() -> None:
    """In a forked child (inline: each logging thread consumes), two threads
    log while a SIGALRM handler flushes every 0.5 ms: every record is
    written once, in each thread's order (a flush from a thread that was
    waiting for its turn must not consume beside the thread whose turn it
    is)."""
    outcome = run_ok(
        REPORT
        + PIPE_CHILD
        + """
def in_child():
    signal.signal(signal.SIGALRM, lambda signum, frame: handler.flush())
    signal.setitimer(signal.ITIMER_REAL, 0.0005, 0.0005)
    def work(name):
        for number in range(2000):
            log.warning("%s %d", name, number)
    other = threading.Thread(target=work, args=("T",))
    other.start()
    work("M")
    other.join()
    signal.setitimer(signal.ITIMER_REAL, 0)
run_child_and_report()
""",
        timeout=60,
    )
    lines = found_in(outcome.stdout)["lines"]
    assert isinstance(lines, list)
    for name in "TM":
        mine = [line for line in lines if line.startswith(name + " ")]
        assert [f"{name} {n}" for n in range(2000)] == mine


def test_reading_dropped_while_a_signal_handler_flushes() -> None:
    """The main thread reads `dropped` in a loop while a SIGALRM handler on
    it flushes: no deadlock (the writer never waits for a reader)."""
    outcome = run_ok(
        REPORT
        + """
import logging, signal, time, safelog
class Slow(logging.Handler):
    def emit(self, record):
        time.sleep(0.0002)
handler = safelog.QueueHandler(Slow(), maxsize=10, overflow="drop_new")
log = logging.getLogger("d"); log.addHandler(handler); log.propagate = False
signal.signal(signal.SIGALRM, lambda signum, frame: handler.flush())
signal.setitimer(signal.ITIMER_REAL, 0.0005, 0.0005)
until = time.monotonic() + 1.5
while time.monotonic() < until:
    for _ in range(50):
        log.warning("x")
    handler.dropped
signal.setitimer(signal.ITIMER_REAL, 0)
handler.flush()
report(dropped=handler.dropped)
""",
        timeout=30,
    )
    dropped = found_in(outcome.stdout)["dropped"]
    assert isinstance(dropped, int) and dropped > 0


def test_inline_child_leaving_by_os_exit_keeps_signal_handler_records() -> None:
    """In a forked child, a SIGALRM handler logs while the main thread logs;
    the child leaves through os._exit(): every record of both is written (a
    record a signal handler put while its thread finished its turn as
    consumer is taken before the log call returns)."""
    outcome = run_ok(
        REPORT
        + PIPE_CHILD
        + """
import itertools
def in_child():
    numbers = itertools.count()
    signal.signal(
        signal.SIGALRM, lambda signum, frame: log.warning("signal %d", next(numbers))
    )
    signal.setitimer(signal.ITIMER_REAL, 0.0002, 0.0002)
    for number in range(20000):
        log.warning("main %d", number)
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, signal.SIG_IGN)
    os.write(write_end, f"signals {next(numbers)}\\n".encode())
run_child_and_report()
""",
        timeout=60,
    )
    lines = found_in(outcome.stdout)["lines"]
    assert isinstance(lines, list)
    signals = int(lines[-1].split()[1])
    assert signals > 0
    expected = {f"main {n}" for n in range(20000)}
    expected |= {f"signal {n}" for n in range(signals)}
    assert expected == set(lines[:-1])
    assert len(expected) == len(lines) - 1


def test_signal_handler_flush_while_its_thread_starts_the_writer() -> None:
    """A signal handler that flushes while its own thread waits in
    Thread.start() for the writer it is starting: flush() returns only once
    the record logged before it is written."""
    outcome = run_ok(
        REPORT
        + """
import logging, signal, threading, time, safelog
MAIN = threading.get_ident()
class Slow(logging.Handler):
    written = []
    def emit(self, record):
        if not self.written and not hasattr(self, "sent"):
            self.sent = True  # lands while the main thread is in start()
            signal.pthread_kill(MAIN, signal.SIGUSR1)
        time.sleep(0.2)
        self.written.append(record.getMessage())
target = Slow()
handler = safelog.QueueHandler(target)
log = logging.getLogger("w"); log.addHandler(handler); log.propagate = False
seen = []
def on_usr1(signum, frame):
    handler.flush()
    seen.append(list(target.written))
signal.signal(signal.SIGUSR1, on_usr1)
log.warning("first")
time.sleep(0.5)
handler.close()
report(seen=seen)
""",
        timeout=30,
    )
    assert [["first"]] == found_in(outcome.stdout)["seen"]


@pytest.mark.parametrize("waiting_in", ["flush", "close", "block"])
def test_fork_from_a_signal_handler_while_waiting_for_the_writer(
    waiting_in: str,
) -> None:
    """A signal handler forks while its thread waits for the writer (in
    flush(), close(), or for room in a full queue): the child's interrupted
    call returns instead of waiting for a writer that does not exist there."""
    outcome = run_ok(
        REPORT
        + f"""
import logging, os, signal, threading, time, safelog
from safelog._harness import wait_for_children
gate = threading.Event()
class Gated(logging.Handler):
    def emit(self, record):
        gate.wait(10)
handler = safelog.QueueHandler(Gated(), maxsize=2)
log = logging.getLogger("g"); log.addHandler(handler); log.propagate = False
for number in range(3):
    log.warning("r%d", number)
forked = []
def on_alarm(signum, frame):
    pid = os.fork()
    if pid == 0:
        forked.append("child")
        return
    forked.append(pid)
signal.signal(signal.SIGALRM, on_alarm)
signal.setitimer(signal.ITIMER_REAL, 0.1)
threading.Timer(0.5, gate.set).start()  # the parent's writer goes on then
if {waiting_in!r} == "flush":
    handler.flush()
elif {waiting_in!r} == "close":
    handler.close()
else:
    log.warning("waits for room")
if forked == ["child"]:
    os._exit(0)  # the child came back from the interrupted call
pid = forked[0]
if wait_for_children({{pid: time.monotonic() + 5}})[pid] is None:
    report(child="hung")
    raise SystemExit(0)
report(child="returned")
""",
        timeout=30,
    )
    assert "returned" == found_in(outcome.stdout)["child"]


# -- waits for the writer that could deadlock ---------------------------------------


def test_flush_and_close_holding_the_module_lock_return() -> None:
    """flush() and close() from a thread that holds logging's module lock
    (as dictConfig does while it flushes and closes the old handlers), while
    the writer is in a target that needs that lock: each waits a bounded
    time, then lets go, and the writer writes the rest once the lock is
    free.  (The standard handlers deadlock here only through the target's
    own lock, which dictConfig's shutdown takes: a lock-order inversion of
    logging itself, not the queue's.)"""
    outcome = run_ok(
        REPORT
        + """
import logging, threading, time, safelog
acquire = getattr(logging, "_acquireLock", None) or logging._lock.acquire
release = getattr(logging, "_releaseLock", None) or logging._lock.release
written = []
entered = threading.Event()
class NeedsModuleLock(logging.Handler):
    def emit(self, record):
        entered.set()
        time.sleep(0.2)
        logging.getLogger("lib.inside").debug("x")  # takes the module lock
        written.append(record.getMessage())
queue = safelog.QueueHandler(NeedsModuleLock())
log = logging.getLogger("q"); log.addHandler(queue); log.propagate = False
log.warning("first")
entered.wait(5)
log.warning("second")
started = time.monotonic()
acquire()
try:
    queue.flush()
    queue.close()
finally:
    release()
waited = time.monotonic() - started
time.sleep(1.0)
report(waited=waited, written=written)
""",
        timeout=30.0,
    )
    found = found_in(outcome.stdout)
    assert found["waited"] < 5.0
    assert ["first", "second"] == found["written"]


def test_signal_handler_flush_while_its_thread_holds_a_target_lock() -> None:
    """A signal handler calls safelog.flush() while the thread it interrupts
    writes straight through a handler that is also a queue target (holding
    its lock), and the writer waits for that lock: the flush waits a bounded
    time and returns; every record is written."""
    outcome = run_ok(
        REPORT
        + """
import logging, os, signal, tempfile, time, safelog
path = tempfile.mktemp()
target = safelog.FileHandler(path)
queue = safelog.QueueHandler(target)
logging.getLogger("via.queue").addHandler(queue)
direct = logging.getLogger("direct")
direct.addHandler(target)
direct.propagate = False
flushed = []
def on_term(signum, frame):
    safelog.flush()
    flushed.append(True)
signal.signal(signal.SIGTERM, on_term)
class Interrupted(logging.Formatter):
    def format(self, record):
        if record.name == "direct":
            logging.getLogger("via.queue").warning("queued meanwhile")
            time.sleep(0.2)  # the writer now waits for the target's lock
            os.kill(os.getpid(), signal.SIGTERM)
        return super().format(record)
target.setFormatter(Interrupted("%(name)s %(message)s"))
direct.warning("written directly")
safelog.flush()
report(flushed=flushed, lines=open(path).read().splitlines())
""",
        timeout=30.0,
    )
    found = found_in(outcome.stdout)
    assert [True] == found["flushed"]
    assert ["direct written directly", "via.queue queued meanwhile"] == found["lines"]


# -- records owed by the consuming thread ----------------------------------------------


def test_inline_flush_takes_the_record_its_signal_handler_logs() -> None:
    """In a forked child (inline), a signal handler logs while flush() is
    answering its barrier on the same thread (here: inside a target's
    flush): the record is written before flush() returns, so the child may
    leave through os._exit()."""
    outcome = run_ok(
        REPORT
        + PIPE_CHILD
        + """
class SignalOnFlush(logging.Handler):
    armed = False
    def emit(self, record):
        pass
    def flush(self):
        if SignalOnFlush.armed:
            SignalOnFlush.armed = False
            signal.raise_signal(signal.SIGUSR1)
handler = safelog.QueueHandler([Pipe(), SignalOnFlush()])
log.handlers[:] = [handler]
signal.signal(signal.SIGUSR1, lambda *args: log.warning("from the signal handler"))
def in_child():
    log.warning("before flush")
    SignalOnFlush.armed = True
    handler.flush()
run_child_and_report()
""",
        timeout=30.0,
    )
    assert ["before flush", "from the signal handler"] == found_in(outcome.stdout)[
        "lines"
    ]


def test_record_owed_while_a_fork_holds_the_consumer_is_written() -> None:
    """In a forked child (inline) with a second thread: a record logged by a
    signal handler just as the consuming thread lets go, when a fork on the
    other thread takes the consumer at that moment, is written once the fork
    is over, before the child leaves.  A line tracer places the signal and
    the thread switch."""
    outcome = run_ok(
        REPORT
        + PIPE_CHILD
        + """
import inspect, sys, time
import safelog._queue as queue_module
def in_child():
    go = threading.Event()
    def forker():
        go.wait()
        pid = os.fork()  # its before step takes the consumer
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
    class Slow:  # a participant whose before step takes a while
        def before_fork(self, deadline):
            time.sleep(max(0, deadline - time.monotonic()))
        def after_fork_in_parent(self):
            pass
        def after_fork_in_child(self):
            pass
    slow = Slow()
    safelog._atfork.register(slow)
    safelog.set_fork_timeout(1.0)
    thread = threading.Thread(target=forker)
    thread.start()
    code = queue_module.QueueHandler._consume_here.__code__
    lines, first = inspect.getsourcelines(queue_module.QueueHandler._consume_here)
    release = first + next(
        i for i, line in enumerate(lines) if "state.consumer.release()" in line)
    check = first + next(
        i for i, line in enumerate(lines) if "if not state.owed" in line)
    fired = []
    def local(frame, event, arg):
        if event == "line" and not fired and frame.f_lineno == release:
            fired.append(1)
            log.warning("from the signal handler")  # what a signal handler does here
            go.set()
            time.sleep(0.2)  # the forking thread now waits for the consumer
        elif event == "line" and fired == [1] and frame.f_lineno == check:
            fired.append(2)
            time.sleep(0.2)  # ...and has it, after the release
        return local
    sys.settrace(lambda frame, event, arg: local if frame.f_code is code else None)
    log.warning("main record")
    sys.settrace(None)
    thread.join()
run_child_and_report()
""",
        timeout=30.0,
    )
    assert ["from the signal handler", "main record"] == sorted(
        found_in(outcome.stdout)["lines"]
    )


def test_idle_queue_starts_no_writer_at_fork() -> None:
    """A queue handler with nothing queued and no writer running: after a
    fork the parent still has one thread (so 3.12+ does not warn that the
    process forks while multi-threaded at its next fork)."""
    outcome = run_ok(
        REPORT
        + """
import logging, os, threading, warnings, safelog
queue = safelog.QueueHandler(logging.NullHandler())
threads = []
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    for _ in range(2):
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
        threads.append(sorted(thread.name for thread in threading.enumerate()))
report(threads=threads, warnings=[str(warning.message) for warning in caught])
"""
    )
    found = found_in(outcome.stdout)
    assert [["MainThread"], ["MainThread"]] == found["threads"]
    assert [] == found["warnings"]
