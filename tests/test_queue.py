"""safelog.QueueHandler: the lock-free caller side, the writer thread, overflow,
the flush barrier, and the hazards it exists for (threads, signal handlers,
fork, exit).

Scenarios that fork, exit or could hang run in a child interpreter with a hard
deadline (``scenario.run_ok``) and print what they found as JSON.
"""

from __future__ import annotations

import gc
import io
import json
import logging
import logging.config
import logging.handlers
import os
import pathlib
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator

import pytest

import safelog
from records import log_mixed
from scenario import run, run_ok

SRC_DIR = str(pathlib.Path(__file__).resolve().parents[1] / "src")
FORMAT = "%(asctime)s %(levelname)s %(name)s %(process)d %(threadName)s: %(message)s"


class ListHandler(logging.Handler):
    """Collects formatted records; ``entered`` is set on the first one, and
    each emit waits for ``gate`` (open unless closed by a test)."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []
        self.threads: list[str] = []
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.gate.set()

    def emit(self, record: logging.LogRecord) -> None:
        self.entered.set()
        self.gate.wait(10)
        self.threads.append(threading.current_thread().name)
        self.lines.append(self.format(record))


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    """A logger of its own, not propagating, at DEBUG."""
    named = logging.getLogger(f"test_queue.{time.monotonic_ns()}")
    named.setLevel(logging.DEBUG)
    named.propagate = False
    yield named


def attach(logger: logging.Logger, handler: logging.Handler) -> logging.Handler:
    logger.addHandler(handler)
    return handler


def writer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "safelog-writer"]


# -- the caller side ---------------------------------------------------------


def test_output_equals_direct_target(
    logger: logging.Logger, tmp_path: pathlib.Path
) -> None:
    """The target writes the same bytes through the queue as called directly."""
    direct_path, queued_path = tmp_path / "direct.log", tmp_path / "queued.log"
    formatter = logging.Formatter(FORMAT, datefmt="%H:%M")
    direct = logging.FileHandler(direct_path)
    target = logging.FileHandler(queued_path)
    direct.setFormatter(formatter)
    target.setFormatter(formatter)
    queued = safelog.QueueHandler([target])
    attach(logger, direct)
    attach(logger, queued)
    # The queued handler goes first, so the direct handler's formatter cannot
    # have cached exc_text on the record for it.
    logger.handlers.reverse()
    log_mixed(logger)
    queued.flush()
    queued.close()
    direct.close()
    assert direct_path.read_bytes() == queued_path.read_bytes()


def test_message_captured_at_call_time(logger: logging.Logger) -> None:
    """Arguments and an exception changed after the call do not change the
    record written later."""
    target = ListHandler()
    target.setFormatter(logging.Formatter("%(message)s"))
    handler = attach(logger, safelog.QueueHandler([target]))
    target.gate.clear()
    logger.info("hold")
    assert target.entered.wait(5)
    items = ["before"]
    logger.info("items %s", items)
    error = ValueError("original")
    try:
        raise error
    except ValueError:
        logger.exception("failed")
    items[0] = "after"
    error.args = ("changed",)
    target.gate.set()
    handler.flush()
    assert "items ['before']" == target.lines[1]
    assert target.lines[2].startswith("failed\nTraceback")
    assert target.lines[2].endswith("ValueError: original")


def test_caller_takes_no_lock(logger: logging.Logger) -> None:
    """handle() acquires no lock, waits on nothing, and never calls a target."""
    target = ListHandler()
    handler = attach(logger, safelog.QueueHandler([target]))
    logger.info("start the writer")
    handler.flush()
    calls: list[str] = []

    def profile(frame: object, event: str, arg: object) -> None:
        if event == "c_call":
            calls.append(getattr(arg, "__qualname__", repr(arg)))
        elif event == "call":
            code = frame.f_code  # type: ignore[attr-defined]
            calls.append(
                f"{code.co_filename}:{code.co_qualname}"
                if hasattr(code, "co_qualname")
                else f"{code.co_filename}:{code.co_name}"
            )

    records = [
        logger.makeRecord(logger.name, logging.INFO, "f", 1, "r %d", (i,), None)
        for i in range(100)
    ]
    try:
        raise OSError("x")
    except OSError:
        records.append(
            logger.makeRecord(
                logger.name, logging.ERROR, "f", 1, "e", None, sys.exc_info()
            )
        )
    # No garbage collection meanwhile: a weakref callback of some other
    # object (a handler dropped by an earlier test) is not the caller path.
    gc.collect()
    gc.disable()
    sys.setprofile(profile)
    try:
        for record in records:
            handler.handle(record)
    finally:
        sys.setprofile(None)
        gc.enable()
    handler.flush()
    blocking = [
        call
        for call in calls
        if any(word in call for word in ("acquire", ".wait", "lock", "Lock"))
        or any(module in call for module in ("/threading.py", "/queue.py"))
        or "ListHandler" in call
    ]
    assert [] == blocking
    assert 102 == len(target.lines)
    assert {"safelog-writer"} == set(target.threads)


def test_filters_levels_and_formatters_honoured(logger: logging.Logger) -> None:
    """Each target applies its own level, filters and formatter; the queue
    handler's own filters and level apply on the caller side."""
    errors_only, everything = ListHandler(), ListHandler()
    errors_only.setLevel(logging.ERROR)
    errors_only.setFormatter(logging.Formatter("E %(message)s"))
    everything.setFormatter(logging.Formatter("A %(message)s"))
    everything.addFilter(lambda record: "secret" not in record.getMessage())
    handler = safelog.QueueHandler([errors_only, everything])
    handler.setLevel(logging.INFO)
    handler.addFilter(lambda record: record.getMessage() != "vetoed")
    attach(logger, handler)
    for text in ("debug", "info", "secret", "vetoed"):
        logger.log(logging.DEBUG if text == "debug" else logging.INFO, text)
    logger.error("bad")
    handler.flush()
    assert ["E bad"] == errors_only.lines
    assert ["A info", "A bad"] == everything.lines


def test_writer_starts_lazily_named_daemon(logger: logging.Logger) -> None:
    """No thread before the first record; then one daemon named safelog-writer."""
    before = len(writer_threads())
    handler = attach(logger, safelog.QueueHandler([ListHandler()]))
    assert before == len(writer_threads())
    logger.info("first")
    handler.flush()
    started = [t for t in writer_threads() if t is handler._state.writer]
    assert 1 == len(started)
    assert started[0].daemon
    handler.close()
    assert before == len(writer_threads())


def test_target_error_goes_to_its_handle_error(logger: logging.Logger) -> None:
    """A target that raises reaches its own handleError; the writer goes on."""

    class Broken(logging.Handler):
        def __init__(self) -> None:
            super().__init__()
            self.errors: list[str] = []

        def handle(self, record: logging.LogRecord) -> bool:
            raise RuntimeError("broken target")

        def handleError(self, record: logging.LogRecord) -> None:
            self.errors.append(str(sys.exc_info()[1]))

    broken, good = Broken(), ListHandler()
    handler = attach(logger, safelog.QueueHandler([broken, good]))
    logger.info("one")
    logger.info("two")
    handler.flush()
    assert ["broken target"] * 2 == broken.errors
    assert 2 == len(good.lines)
    assert handler._state.writer is not None and handler._state.writer.is_alive()


def test_reentrant_logging_from_target(logger: logging.Logger) -> None:
    """A target that logs through the same handler neither deadlocks nor
    loses the inner record."""

    class Chatty(ListHandler):
        def emit(self, record: logging.LogRecord) -> None:
            super().emit(record)
            if record.getMessage() == "outer":
                logger.info("inner")

    target = Chatty()
    handler = attach(logger, safelog.QueueHandler([target]))
    logger.info("outer")
    handler.flush()
    handler.flush()
    assert ["outer", "inner"] == target.lines


def test_flush_and_close_from_target_do_not_deadlock() -> None:
    """flush() and close() called by a target, on the writer thread or (after
    close) on the logging thread, return and still write everything."""
    outcome = run_ok(
        """
        import json, logging, safelog
        lines = []
        class Target(logging.Handler):
            def emit(self, record):
                lines.append(record.getMessage())
                if record.getMessage() == "flush me":
                    queued.flush()
                    safelog.flush()
                if record.getMessage() == "close me":
                    queued.close()
        queued = safelog.QueueHandler([Target()])
        log = logging.getLogger("x"); log.addHandler(queued); log.propagate = False
        log.warning("flush me")
        for i in range(50): log.warning("r%d", i)
        queued.flush()
        log.warning("close me")
        log.warning("after close")
        log.warning("flush me")  # handled on this thread now, inside the drain
        queued.flush()
        queued.close()
        print(json.dumps(lines))
        """,
        timeout=30,
    )
    lines = json.loads(outcome.stdout)
    expected = [
        "flush me",
        *(f"r{i}" for i in range(50)),
        "close me",
        "after close",
        "flush me",
    ]
    assert expected == lines


def test_flush_and_close_idempotent_from_threads(logger: logging.Logger) -> None:
    """flush() and close() from many threads at once, twice, write each
    record once and stop the writer."""
    target = ListHandler()
    handler = attach(logger, safelog.QueueHandler([target]))

    def work(index: int) -> None:
        for seq in range(200):
            logger.info("t%d %d", index, seq)
        handler.flush()
        handler.close()
        handler.close()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    handler.flush()
    assert 800 == len(target.lines)
    assert 800 == len(set(target.lines))
    assert handler._state.writer is None


def test_named_targets_resolved_lazily(logger: logging.Logger) -> None:
    """Targets given by name are looked up on the first record."""
    handler = attach(logger, safelog.QueueHandler(["test-queue-late"]))
    late = ListHandler()
    late.name = "test-queue-late"
    logger.info("hello")
    handler.flush()
    assert ["hello"] == late.lines
    assert (late,) == handler.targets


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"handlers": []}, ValueError),
        ({"handlers": [42]}, TypeError),
        ({"handlers": ["x"], "maxsize": 0}, ValueError),
        ({"handlers": ["x"], "maxsize": 1.5}, TypeError),
        ({"handlers": ["x"], "overflow": "drop"}, ValueError),
    ],
)
def test_bad_arguments_rejected(options: dict[str, object], error: type) -> None:
    """Wrong targets, maxsize or overflow fail at construction."""
    with pytest.raises(error):
        safelog.QueueHandler(**options)  # type: ignore[arg-type]


# -- overflow -----------------------------------------------------------------


def gated(maxsize: int, overflow: str) -> tuple[safelog.QueueHandler, ListHandler]:
    """A handler whose writer is stuck inside the target on record "hold"."""
    target = ListHandler()
    target.setFormatter(logging.Formatter("%(name)s %(message)s"))
    handler = safelog.QueueHandler(
        [target],
        maxsize=maxsize,
        overflow=overflow,  # type: ignore[arg-type]
    )
    target.gate.clear()
    return handler, target


@pytest.mark.parametrize("overflow", ["drop_new", "drop_old"])
def test_drop_policies_count_exactly(logger: logging.Logger, overflow: str) -> None:
    """drop_new keeps the oldest, drop_old the newest, and both count and
    report exactly what they dropped."""
    handler, target = gated(10, overflow)
    attach(logger, handler)
    logger.info("hold")
    assert target.entered.wait(5)
    for index in range(25):
        logger.info("r%d", index)
    assert 15 == handler.dropped
    target.gate.set()
    handler.flush()
    kept = [f"r{i}" for i in (range(10) if overflow == "drop_new" else range(15, 25))]
    name = logger.name
    records = [line for line in target.lines if not line.startswith("safelog ")]
    warnings = [line for line in target.lines if line.startswith("safelog ")]
    assert [f"{name} hold", *(f"{name} {m}" for m in kept)] == records
    expected_warning = (
        "safelog safelog.QueueHandler dropped 15 record(s): queue full "
        f"(maxsize=10, overflow={overflow!r})"
    )
    assert [expected_warning] == warnings
    assert 15 == handler.dropped


def test_drop_old_does_not_make_flush_wait_for_later_records(
    logger: logging.Logger,
) -> None:
    """With drop_old, a caller that finds a flush barrier at the front of a
    full queue neither drops it nor puts it back behind newer records: the
    flush is answered once the records queued before it are handled (here:
    all dropped but the one in the target) and the drops reported, not after
    records logged later."""

    class FlushRecording(ListHandler):
        def flush(self) -> None:
            flushed_after.append(list(self.lines))

    flushed_after: list[list[str]] = []
    target = FlushRecording()
    target.setFormatter(logging.Formatter("%(message)s"))
    target.gate.clear()
    handler = attach(
        logger, safelog.QueueHandler([target], maxsize=10, overflow="drop_old")
    )
    logger.info("hold")
    assert target.entered.wait(5)
    for index in range(10):
        logger.info("early %d", index)
    flusher = threading.Thread(target=handler.flush)
    flusher.start()
    deadline = time.monotonic() + 5
    while handler._state.items.qsize() < 11 and time.monotonic() < deadline:
        time.sleep(0.001)  # the barrier is queued behind the ten
    for index in range(15):
        logger.info("late %d", index)
    target.gate.set()
    flusher.join(10)
    assert not flusher.is_alive()
    report = (
        "safelog.QueueHandler dropped 14 record(s): queue full "
        "(maxsize=10, overflow='drop_old')"
    )
    assert ["hold", report] == flushed_after[0]
    handler.flush()
    # Ten early records and the four late ones pushed out after the barrier
    # left the queue; the barrier itself is never counted.
    assert 14 == handler.dropped
    assert [f"late {i}" for i in range(4, 15)] == [
        line for line in target.lines if line.startswith("late ")
    ]


def test_drop_counts_exact_under_threads(logger: logging.Logger) -> None:
    """Drops counted from 4 threads at once add up exactly."""
    handler, target = gated(50, "drop_new")
    attach(logger, handler)
    logger.info("hold")
    assert target.entered.wait(5)

    def work() -> None:
        for _ in range(2000):
            logger.info("x")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    target.gate.set()
    handler.flush()
    assert 8000 - 50 == handler.dropped
    assert 1 + 50 + 1 == len(target.lines)


def test_block_loses_nothing_under_slow_target(logger: logging.Logger) -> None:
    """With overflow='block' and a slow target, 4 threads lose nothing."""

    class Slow(ListHandler):
        def emit(self, record: logging.LogRecord) -> None:
            super().emit(record)
            if len(self.lines) % 100 == 0:
                time.sleep(0.001)

    target = Slow()
    handler = attach(logger, safelog.QueueHandler([target], maxsize=8))

    def work(index: int) -> None:
        for seq in range(1000):
            logger.info("t%d %d", index, seq)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    handler.flush()
    assert 0 == handler.dropped
    assert 4000 == len(set(target.lines))
    for index in range(4):
        mine = [line for line in target.lines if line.startswith(f"t{index} ")]
        assert [f"t{index} {seq}" for seq in range(1000)] == mine


# -- signal handlers ------------------------------------------------------------


def test_signal_handler_logging_in_tight_loop() -> None:
    """Logging from a signal handler that interrupts a tight logging loop
    neither deadlocks nor raises 'reentrant call', and writes every record."""
    outcome = run_ok(
        """
        import itertools, json, logging, signal, sys, safelog
        target = logging.StreamHandler(sys.stderr)  # a BufferedWriter underneath
        queued = safelog.QueueHandler([target])
        log = logging.getLogger("sig"); log.addHandler(queued); log.propagate = False
        numbers = itertools.count()  # atomic: a handler may interrupt a handler
        def on_alarm(signum, frame):
            log.warning("signal %d", next(numbers))
        signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, 0.0005, 0.0005)
        for i in range(30000):
            log.warning("loop %d", i)
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, signal.SIG_IGN)
        signals = next(numbers)
        safelog.flush()
        print(json.dumps({"loops": i + 1, "signals": signals}))
        """,
        timeout=45,
    )
    counts = json.loads(outcome.stdout)
    lines = outcome.stderr.splitlines()
    assert [] == [line for line in lines if "RuntimeError" in line]
    loop = [line for line in lines if line.startswith("loop ")]
    signals = [line for line in lines if line.startswith("signal ")]
    assert [f"loop {i}" for i in range(counts["loops"])] == loop
    expected = sorted(f"signal {i}" for i in range(counts["signals"]))
    assert expected == sorted(signals)
    assert counts["signals"] > 0


# -- fork -----------------------------------------------------------------------

# A before-fork hook registered before safelog is imported runs after
# safelog's before step (hooks run newest first): it sees the process as it
# is at the instant of fork.
AT_FORK_PROBE = """
import os, threading
at_fork = []
def _probe():
    try:
        tasks = len(os.listdir("/proc/self/task"))
    except OSError:
        tasks = None
    at_fork.append({"threads": [t.name for t in threading.enumerate()],
                    "os_threads": tasks})
os.register_at_fork(before=_probe)
"""


def test_no_thread_at_instant_of_fork() -> None:
    """At the instant of fork no safelog thread exists, and a child that never
    logs starts none."""
    outcome = run_ok(
        AT_FORK_PROBE
        + """
import json, logging, sys, threading, time, safelog
safelog.set_fork_timeout(1.0)  # a stalled machine may need more than 0.1 s
queued = safelog.QueueHandler([logging.StreamHandler(sys.stdout)])
log = logging.getLogger("f"); log.addHandler(queued); log.propagate = False
child_threads = []
for i in range(5):
    log.warning("parent %d", i)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        time.sleep(0.05)
        os.write(write, str(threading.active_count()).encode())
        os._exit(0)
    os.close(write)
    child_threads.append(int(os.read(read, 10)))
    os.close(read)
    os.waitpid(pid, 0)
safelog.flush()
print(json.dumps({"at_fork": at_fork, "child_threads": child_threads}))
""",
        timeout=30,
    )
    found = json.loads(outcome.stdout.splitlines()[-1])
    assert [["MainThread"]] * 5 == [probe["threads"] for probe in found["at_fork"]]
    if found["at_fork"][0]["os_threads"] is not None:
        assert [1] * 5 == [probe["os_threads"] for probe in found["at_fork"]]
    assert [1] * 5 == found["child_threads"]
    assert [f"parent {i}" for i in range(5)] == outcome.stdout.splitlines()[:5]


def test_no_fork_warning_when_writer_is_only_thread() -> None:
    """On 3.12+, fork() does not warn about threads when safelog's writer is
    the only other thread (and it does warn with a stdlib QueueListener)."""
    outcome = run_ok(
        """
        import json, logging, logging.handlers, os, queue, sys, warnings, safelog
        # What is checked is that the writer is stopped, not how fast: a
        # stalled machine may need more than the default 0.1 s.
        safelog.set_fork_timeout(1.0)
        def forks_warn(log):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                for i in range(20):
                    log.warning("r%d", i)
                    pid = os.fork()
                    if pid == 0:
                        os._exit(0)
                    os.waitpid(pid, 0)
            return sum(issubclass(w.category, DeprecationWarning) for w in caught)
        null = logging.NullHandler()
        ours = logging.getLogger("ours"); ours.propagate = False
        ours.addHandler(safelog.QueueHandler([null]))
        mine = forks_warn(ours)
        safelog.flush()
        q = queue.Queue()
        listener = logging.handlers.QueueListener(q, null)
        listener.start()
        theirs = logging.getLogger("theirs"); theirs.propagate = False
        theirs.addHandler(logging.handlers.QueueHandler(q))
        stdlib = forks_warn(theirs)
        listener.stop()
        print(json.dumps([mine, stdlib]))
        """,
        timeout=30,
    )
    mine, stdlib = json.loads(outcome.stdout)
    assert 0 == mine
    if sys.version_info >= (3, 12):
        assert stdlib > 0  # the check can see a thread: ours was really gone


def test_fork_past_deadline_writes_nothing_twice(tmp_path: pathlib.Path) -> None:
    """When the writer is stuck in a slow target past the fork timeout, the
    child writes none of the parent's pending records and the parent writes
    them all."""
    log_path = tmp_path / "out.log"
    outcome = run_ok(
        f"""
        import logging, os, threading, time, safelog
        safelog.set_fork_timeout(0.02)
        class Slow(safelog.FileHandler):
            def emit(self, record):
                if record.getMessage() == "slow":
                    time.sleep(2.0)
                super().emit(record)
        target = Slow({str(log_path)!r})
        target.setFormatter(logging.Formatter("%(process)d %(message)s"))
        queued = safelog.QueueHandler([target])
        log = logging.getLogger("d"); log.addHandler(queued); log.propagate = False
        log.warning("slow")
        for i in range(100):
            log.warning("pending %d", i)
        started = time.monotonic()
        pid = os.fork()
        if pid == 0:
            log.warning("child")
            safelog.flush()
            os._exit(0)
        took = time.monotonic() - started
        os.waitpid(pid, 0)
        # Far below the stall: the fork did not wait for the writer (the
        # margin is for a stalled machine).
        assert took < 1.0, took
        safelog.flush()
        print(pid)
        """,
        timeout=30,
    )
    child = int(outcome.stdout)
    lines = log_path.read_text().splitlines()
    parent_lines = [
        line.split(" ", 1)[1] for line in lines if not line.startswith(f"{child} ")
    ]
    assert [f"{child} child"] == [
        line for line in lines if line.startswith(f"{child} ")
    ]
    assert ["slow", *(f"pending {i}" for i in range(100))] == parent_lines


TORTURE_SCENARIO = """
import json, logging, logging.handlers, multiprocessing, os, queue, sys
import threading, time, warnings
import safelog
from safelog._harness import wait_for_children
# This scenario means to fork with threads running.
warnings.filterwarnings("ignore", "This process .* multi-threaded", DeprecationWarning)
path, forks, per_child, pair = sys.argv[1:]
forks, per_child = int(forks), int(per_child)

def configure():
    target = safelog.FileHandler(path)
    target.setFormatter(logging.Formatter("<%(process)d|%(message)s>"))
    log = logging.getLogger("torture")
    log.handlers.clear()
    log.propagate = False
    log.setLevel(logging.INFO)
    if pair == "safelog":
        log.addHandler(safelog.QueueHandler([target]))
        return None
    q = queue.Queue()
    listener = logging.handlers.QueueListener(q, target)
    listener.start()
    log.addHandler(logging.handlers.QueueHandler(q))
    return listener

def child_logs(tag):
    log = logging.getLogger("torture")
    for j in range(per_child):
        log.info("child %s %d", tag, j)

def mp_child(tag, start_method):
    if start_method != "fork":
        configure()
    child_logs(tag)
    if tag.endswith("exit"):
        sys.exit(3)

if __name__ == "__main__":
    listener = configure()
    log = logging.getLogger("torture")
    stop = threading.Event()
    sent = [0] * 4
    def chatter(index):
        while not stop.is_set():
            log.info("thread %d %d", index, sent[index])
            sent[index] += 1
    threads = [threading.Thread(target=chatter, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    expected_children = []
    hung = 0
    for n in range(forks):
        way = ("flush_exit", "sys_exit")[n % 2]
        tag = f"{n}-{way}"
        pid = os.fork()
        if pid == 0:
            child_logs(tag)
            if way == "flush_exit":
                if pair == "safelog":
                    safelog.flush()
                os._exit(0)
            sys.exit(0)
        deadline = time.monotonic() + (5 if pair == "safelog" else 1)
        hung += wait_for_children({pid: deadline})[pid] is None
        expected_children.append(tag)
    methods = [m for m in ("fork", "forkserver", "spawn")
               if m in multiprocessing.get_all_start_methods()]
    for method in methods:
        context = multiprocessing.get_context(method)
        for way in ("return", "exit"):
            tag = f"mp-{method}-{way}"
            process = context.Process(target=mp_child, args=(tag, method))
            process.start()
            process.join(20)
            if process.exitcode is None:
                process.kill()
                hung += 1
            expected_children.append(tag)
    stop.set()
    for thread in threads:
        thread.join()
    if pair == "safelog":
        safelog.flush()
    else:
        listener.stop()
    print(json.dumps({"sent": sent, "children": expected_children, "hung": hung,
                      "parent": os.getpid()}))
"""


def run_torture(
    tmp_path: pathlib.Path, forks: int, pair: str = "safelog", per_child: int = 20
) -> dict[str, object]:
    """Run the fork torture; return counts of what reached the file."""
    log_path = tmp_path / "torture.log"
    script = tmp_path / "torture.py"
    script.write_text(TORTURE_SCENARIO)
    outcome = run_ok(
        f"import runpy, sys; sys.argv[0] = {str(script)!r}; "
        f"runpy.run_path({str(script)!r}, run_name='__main__')",
        args=(str(log_path), str(forks), str(per_child), pair),
        timeout=240,
        cwd=tmp_path,
    )
    report = json.loads(outcome.stdout.splitlines()[-1])
    text = log_path.read_text()
    records = text.split("\n")
    assert "" == records.pop()
    torn = [r for r in records if not (r.startswith("<") and r.endswith(">"))]
    messages = [r[1:-1].split("|", 1)[1] for r in records if r not in torn]
    return {"report": report, "torn": torn, "messages": messages}


def check_exactly_once(found: dict[str, object], per_child: int = 20) -> None:
    report = found["report"]
    messages = found["messages"]
    assert isinstance(report, dict) and isinstance(messages, list)
    assert [] == found["torn"]
    assert 0 == report["hung"]
    for index, sent in enumerate(report["sent"]):
        mine = [m for m in messages if m.startswith(f"thread {index} ")]
        assert [f"thread {index} {seq}" for seq in range(sent)] == mine
    children = [m for m in messages if m.startswith("child ")]
    expected = [
        f"child {tag} {j}" for tag in report["children"] for j in range(per_child)
    ]
    assert sorted(expected) == sorted(children)


def test_fork_torture_light(tmp_path: pathlib.Path) -> None:
    """4 threads log while the main thread forks 20 times and starts
    multiprocessing children of every start method: every record, parent's
    and children's, is written exactly once and whole."""
    check_exactly_once(run_torture(tmp_path, forks=20))


@pytest.mark.torture
def test_fork_torture(tmp_path: pathlib.Path) -> None:
    """As the light variant, with 250 forks."""
    check_exactly_once(run_torture(tmp_path, forks=250))


def test_comparison_stdlib_queue_pair_loses_child_records(
    tmp_path: pathlib.Path,
) -> None:
    """Comparison (stdlib defect): logging.handlers.QueueHandler with a
    QueueListener, in the same scenario, loses the forked children's records
    (the listener thread does not exist in the child)."""
    found = run_torture(tmp_path, forks=10, pair="stdlib")
    report, messages = found["report"], found["messages"]
    assert isinstance(report, dict) and isinstance(messages, list)
    raw_fork_children = [tag for tag in report["children"] if "mp-" not in tag]
    written = {m.rsplit(" ", 1)[0][len("child ") :] for m in messages}
    lost = [tag for tag in raw_fork_children if tag not in written]
    assert raw_fork_children == lost


# -- exit -------------------------------------------------------------------------


def exit_scenario(tmp_path: pathlib.Path, body: str) -> list[str]:
    log_path = tmp_path / "exit.log"
    setup = f"""
import logging, os, sys, threading, safelog
target = safelog.FileHandler({str(log_path)!r})
target.setFormatter(logging.Formatter("%(message)s"))
log = logging.getLogger("exit"); log.propagate = False
log.addHandler(safelog.QueueHandler([target]))
"""
    outcome = run(setup + textwrap.dedent(body), timeout=60)
    assert not outcome.hung, outcome.describe()
    return log_path.read_text().splitlines()


def test_exit_normal_writes_everything(tmp_path: pathlib.Path) -> None:
    """At normal exit, with no flush or close, every record is written."""
    lines = exit_scenario(tmp_path, "for i in range(5000): log.warning('r%d', i)")
    assert [f"r{i}" for i in range(5000)] == lines


def test_exit_sys_exit_from_threads(tmp_path: pathlib.Path) -> None:
    """sys.exit() in a thread and then in the main thread, with a non-daemon
    thread still logging at exit: every record is written."""
    body = """
import time
def quits():
    for i in range(1000): log.warning('quitter %d', i)
    sys.exit(1)
def lingers():
    time.sleep(0.2)
    for i in range(1000): log.warning('late %d', i)
threading.Thread(target=quits).start()
threading.Thread(target=lingers).start()
for i in range(1000): log.warning('main %d', i)
sys.exit(2)
"""
    lines = exit_scenario(tmp_path, body)
    for who in ("quitter", "late", "main"):
        mine = [line for line in lines if line.startswith(who + " ")]
        assert [f"{who} {i}" for i in range(1000)] == mine


def test_exit_while_daemon_threads_keep_logging(tmp_path: pathlib.Path) -> None:
    """The interpreter exits while daemon threads log without pause: the exit
    hook's drain takes what was queued, not what keeps coming, so it ends;
    every record the main thread logged is written."""
    body = """
def spam(n):
    i = 0
    while True:
        log.warning('spam%d %d', n, i)
        i += 1
for n in range(4):
    threading.Thread(target=spam, args=(n,), daemon=True).start()
for i in range(2000): log.warning('main %d', i)
"""
    lines = exit_scenario(tmp_path, body)
    assert [f"main {i}" for i in range(2000)] == [
        line for line in lines if line.startswith("main ")
    ]


def test_signal_handler_logging_during_close_does_not_wait(
    tmp_path: pathlib.Path,
) -> None:
    """A signal handler that logs while close() runs on its thread (here:
    while close() flushes the targets) is not made to wait for close() to
    finish, which only that thread could do; its record is written."""
    body = """
import signal
safelog._queue._INLINE_WAIT = 600  # a wait would hang the scenario
raised = [True]  # armed just before close()
class Signalling(safelog.FileHandler):
    def flush(self):
        super().flush()
        if not raised:  # once: the signal handler's record is flushed too
            raised.append(True)
            signal.raise_signal(signal.SIGUSR1)
target.__class__ = Signalling
signal.signal(signal.SIGUSR1, lambda signum, frame: log.warning('from the signal'))
log.warning('before close')
safelog.flush()
raised.clear()
log.handlers[0].close()
log.warning('after close')
"""
    lines = exit_scenario(tmp_path, body)
    assert "before close" == lines[0]
    assert {"from the signal", "after close"} <= set(lines)


def test_close_while_the_writer_is_being_started() -> None:
    """close() called while another thread is starting the writer (held
    inside Thread.start() here) waits for it, stops it, and returns; no
    writer is left running, and the records before and after are written."""
    outcome = run_ok(
        """
        import json, logging, threading, time, safelog
        in_start, release = threading.Event(), threading.Event()
        start = threading.Thread.start
        def held_start(thread):
            if thread.name == "safelog-writer" and not release.is_set():
                in_start.set()
                release.wait(30)
            return start(thread)
        threading.Thread.start = held_start
        written = []
        class Sink(logging.Handler):
            def emit(self, record):
                written.append(record.getMessage())
        queued = safelog.QueueHandler([Sink()])
        log = logging.getLogger("starting"); log.propagate = False
        log.addHandler(queued)
        first = threading.Thread(target=log.warning, args=("first",))
        first.start()
        assert in_start.wait(30)
        errors = []
        def close():
            try:
                queued.close()
            except Exception as error:
                errors.append(repr(error))
        closer = threading.Thread(target=close)
        closer.start()
        time.sleep(0.2)  # close() is waiting for the writer being started
        release.set()
        closer.join(30)
        first.join(30)
        log.warning("after close")
        writers = [t.name for t in threading.enumerate() if t.name == "safelog-writer"]
        print(json.dumps({"errors": errors, "closed": not closer.is_alive(),
                          "written": written, "writers": writers}))
        """,
        timeout=60,
    )
    assert {
        "errors": [],
        "closed": True,
        "written": ["first", "after close"],
        "writers": [],
    } == json.loads(outcome.stdout)


def test_close_while_threads_keep_logging(tmp_path: pathlib.Path) -> None:
    """close() returns while other threads log without pause, having written
    every record logged before it was called; records logged after it go to
    the targets from the logging threads, in each thread's order."""
    body = """
import json, time
stop = threading.Event()
logged = dict.fromkeys(range(3), 0)
def spam(n):
    i = 0
    while not stop.is_set():
        log.warning('t%d %d', n, i)
        i += 1
        logged[n] = i
threads = [threading.Thread(target=spam, args=(n,)) for n in range(3)]
for thread in threads: thread.start()
deadline = time.monotonic() + 30
while min(logged.values()) < 100 and time.monotonic() < deadline:
    time.sleep(0.01)  # every thread is logging (under load, it takes a while)
before_close = dict(logged)
closer = threading.Thread(target=log.handlers[0].close)
closer.start()
closer.join(20)
closed = not closer.is_alive()
time.sleep(0.1)
stop.set()
for thread in threads: thread.join(20)
target.close()
with open(SUMMARY, "w") as f:
    json.dump({"closed": closed, "before_close": before_close, "logged": logged}, f)
"""
    summary_path = tmp_path / "summary.json"
    lines = exit_scenario(tmp_path, body.replace("SUMMARY", repr(str(summary_path))))
    summary = json.loads(summary_path.read_text())
    assert summary["closed"], "close() did not return while threads logged"
    for n in range(3):
        mine = [int(line.split()[1]) for line in lines if line.startswith(f"t{n} ")]
        # Every record whose call returned, once, in order.
        assert list(range(summary["logged"][str(n)])) == mine
        assert summary["before_close"][str(n)] > 0


def test_exit_raw_fork_child_os_exit_after_flush(tmp_path: pathlib.Path) -> None:
    """A raw fork child that calls safelog.flush() and leaves by os._exit
    writes everything; one that leaves by sys.exit() does too."""
    body = """
for way in ("flush", "sys_exit"):
    pid = os.fork()
    if pid == 0:
        for i in range(2000): log.warning('%s %d', way, i)
        if way == "flush":
            safelog.flush()
            os._exit(0)
        sys.exit(0)
    os.waitpid(pid, 0)
"""
    lines = exit_scenario(tmp_path, body)
    for way in ("flush", "sys_exit"):
        mine = [line for line in lines if line.startswith(way + " ")]
        assert [f"{way} {i}" for i in range(2000)] == mine


# -- dictConfig -------------------------------------------------------------------

DICTCONFIG_SCENARIO = """
import json, logging, logging.config, sys, threading
path_a, path_b = sys.argv[1], sys.argv[2]
logging.config.dictConfig({
    "version": 1,
    "formatters": {"plain": {"format": "%(levelname)s %(message)s"}},
    "handlers": {
        # Sorted before its targets, which no logger refers to.
        "async": {"class": "safelog.QueueHandler", "handlers": ["file", "other"],
                  "maxsize": 1000, "overflow": "drop_old", "level": "INFO"},
        "file": {"class": "safelog.FileHandler", "filename": path_a,
                 "formatter": "plain"},
        "other": {"class": "logging.FileHandler", "filename": path_b,
                  "formatter": "plain", "level": "WARNING"},
    },
    "root": {"level": "DEBUG", "handlers": ["async"]},
})
import gc, safelog
gc.collect()
handler = logging.getLogger().handlers[0]
logging.debug("hidden")
logging.info("one")
logging.warning("two")
safelog.flush()
names = sorted(t.name for t in threading.enumerate())
print(json.dumps({
    "type": type(handler).__module__ + "." + type(handler).__qualname__,
    "maxsize": handler.maxsize, "overflow": handler.overflow,
    "targets": [t.name for t in handler.targets], "threads": names,
    "listener": hasattr(handler, "listener"),
    "a": open(path_a).read(), "b": open(path_b).read(),
}))
"""


def interpreter(minor: int) -> str | None:
    """A python3.<minor> on PATH or under pyenv, or None."""
    if sys.version_info[:2] == (3, minor):
        return sys.executable
    pyenv = pathlib.Path(os.environ.get("PYENV_ROOT", "/root/.pyenv")) / "versions"
    for candidate in sorted(pyenv.glob(f"3.{minor}.*/bin/python")):
        return str(candidate)
    found = shutil.which(f"python3.{minor}")
    if found and "shims" not in found:
        return found
    return None


@pytest.mark.parametrize("minor", [9, 10, 11, 12, 13])
def test_dictconfig_names_targets(tmp_path: pathlib.Path, minor: int) -> None:
    """dictConfig builds a QueueHandler whose targets are named handlers, on
    each Python 3.9-3.13 present: targets no logger refers to stay alive, and
    on 3.12+ the stdlib's QueueHandler special case starts no listener."""
    python = interpreter(minor)
    if python is None:
        pytest.skip(f"no python3.{minor} here")
    paths = [str(tmp_path / "a.log"), str(tmp_path / "b.log")]
    completed = subprocess.run(
        [python, "-c", DICTCONFIG_SCENARIO, *paths],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": SRC_DIR},
    )
    assert 0 == completed.returncode, completed.stderr
    found = json.loads(completed.stdout)
    assert "safelog._queue.QueueHandler" == found["type"]
    assert (1000, "drop_old") == (found["maxsize"], found["overflow"])
    assert ["file", "other"] == found["targets"]
    assert ["MainThread", "safelog-writer"] == found["threads"]
    assert not found["listener"]
    assert "INFO one\nWARNING two\n" == found["a"]
    assert "WARNING two\n" == found["b"]


def test_dictconfig_in_process(tmp_path: pathlib.Path) -> None:
    """The running interpreter's dictConfig accepts the handler too."""
    stream = io.StringIO()
    logging.config.dictConfig(
        {
            "version": 1,
            "incremental": False,
            "disable_existing_loggers": False,
            "handlers": {
                "a_queue": {"class": "safelog.QueueHandler", "handlers": ["mem"]},
                "mem": {"class": "logging.StreamHandler", "stream": stream},
            },
            "loggers": {"test_queue_dc": {"handlers": ["a_queue"], "level": "INFO"}},
        }
    )
    logging.getLogger("test_queue_dc").info("configured")
    safelog.flush()
    assert "configured\n" == stream.getvalue()
    for handler in logging.getLogger("test_queue_dc").handlers[:]:
        logging.getLogger("test_queue_dc").removeHandler(handler)
        handler.close()


# -- targets given by name -----------------------------------------------------


def test_target_named_at_construction_is_held(logger: logging.Logger) -> None:
    """A name that exists when the handler is made is bound then, and held:
    logging's registry is weak, so a target nothing else holds would be
    collected (what fileConfig leaves behind for a target no logger uses)."""
    name = f"test-queue-held-{time.monotonic_ns()}"
    target = ListHandler()
    target.set_name(name)
    handler = attach(logger, safelog.QueueHandler([name]))
    del target
    gc.collect()
    logger.info("still there")
    handler.flush()
    (held,) = handler.targets
    assert isinstance(held, ListHandler)
    assert ["still there"] == held.lines
    handler.close()


# first -> "second" by name; second -> first by name or as the object, and
# -> a sink.  Logs two records through second, flushes both a few times (a
# record going round shows up), prints what reached the sink and the reports.
LATE_CYCLE = """
import json, logging, sys
import safelog

class Sink(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines = []
    def emit(self, record):
        self.lines.append(record.getMessage())

sink = Sink()
first = safelog.QueueHandler(["second"])
first.set_name("first")
second = safelog.QueueHandler([first if sys.argv[1] == "object" else "first", sink])
second.set_name("second")
logger = logging.getLogger("app")
logger.propagate = False
logger.addHandler(second)
logger.warning("once")
logger.warning("twice")
for _ in range(3):
    second.flush()
    first.flush()
print(json.dumps({"sink": sink.lines, "first": [h.name for h in first.targets]}))
"""


@pytest.mark.parametrize("closed_by", ["name", "object"])
def test_cycle_formed_later_is_refused_and_reported(closed_by: str) -> None:
    """A cycle that names close after construction (first -> 'second' ->
    first, by name or as the object) is found when a name is looked up: that
    one target is left out and reported once, so each record is written once
    instead of going round for ever."""
    outcome = run_ok(LATE_CYCLE, args=(closed_by,), timeout=30)
    found = json.loads(outcome.stdout)
    assert ["once", "twice"] == found["sink"]
    assert [] == found["first"]
    # second found first when it was made (first's 'second' did not exist
    # yet); first finds the cycle when it looks 'second' up.
    reports = [line for line in outcome.stderr.splitlines() if "cycle" in line]
    assert [
        "ValueError: safelog.QueueHandler: target handlers form a cycle: "
        "'first' -> 'second' -> 'first'; records are not sent to 'second'"
    ] == reports


def test_bad_arguments_leave_no_half_made_handler() -> None:
    """A handler whose arguments fail is not left in logging's handler list,
    where the next dictConfig or logging.shutdown() would flush it half made
    (AttributeError)."""
    with pytest.raises(ValueError) as failed:  # the traceback keeps it alive
        safelog.QueueHandler(["x"], overflow="explode")  # type: ignore[arg-type]
    listed = [ref() for ref in logging._handlerList]  # type: ignore[attr-defined]
    assert [] == [
        handler
        for handler in listed
        if isinstance(handler, safelog.QueueHandler)
        and not hasattr(handler, "_owner_pid")
    ]
    assert failed.value.__traceback__ is not None
