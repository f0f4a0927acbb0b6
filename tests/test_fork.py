"""Real forks, real threads, real files: what safelog's handlers promise a
forked child, shown against the stdlib handlers where those fail.

Every scenario runs in a child interpreter (``scenario.run_ok``) with a hard
timeout; inside it, every forked child gets a short deadline of its own and is
killed and reported when it misses it (``ForkedChildren`` of
``safelog._harness``).  The scenario prints one JSON summary on stdout, and the
test asserts on that summary.

Records are the harness's (``record_line``): each is one line that carries its
id and a checksum, so its tally (``count_records``) finds records lost or
written twice, and lines torn, even a line spliced from two records.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

import scenario
from safelog._harness import ScenarioResult, Tally

#: Shared by every scenario here: the harness, a summary line, and a pipe.
PRELUDE = """
import dataclasses, io, json, logging, os, pathlib, re, sys, threading, time

import safelog
from safelog._harness import (
    ForkedChildren, LoggingThreads, count_records, ignore_fork_warning,
    record_line, run_scenario,
)

# These scenarios fork while threads run on purpose; 3.12+ warns about exactly
# that.  Ignored (not turned into an error) so that it never lands in a log
# file under test either.
ignore_fork_warning()


def print_summary(tally=None, **fields):
    # The last line of stdout, which the test reads.
    if tally is not None:
        fields["tally"] = dataclasses.asdict(tally)
    print(json.dumps(fields))


def buffered_pipe_stream(target):
    # A buffered text stream on the write end of a new pipe (PYTHONUNBUFFERED
    # is unset): sys.stderr moved onto it ("stderr"), or a file object as
    # open() makes one ("file-object").  Returns the read end, the stream, and
    # what closes the pipe's last write end here.
    read_end, write_end = os.pipe()
    if target != "stderr":
        stream = os.fdopen(write_end, "w", encoding="utf-8")
        return read_end, stream, stream.close
    saved_stderr = os.dup(2)
    os.dup2(write_end, 2)
    os.close(write_end)
    def restore_stderr():
        os.dup2(saved_stderr, 2)
        os.close(saved_stderr)
    return read_end, sys.stderr, restore_stderr
"""

#: A buffered stdio in the scenario interpreter, whatever the machine sets.
BUFFERED_STDIO: dict[str, str | None] = {
    "PYTHONUNBUFFERED": None,
    "PYTHONIOENCODING": "utf-8",
}

#: A forked child that logs a few records must be done within this; under
#: load it takes well under a second, and a deadlocked one never finishes.
CHILD_DEADLINE = 5.0

#: Every expected record in the log exactly once, and nothing else.
CLEAN = Tally(lost=0, duplicated=0, torn=0, other=[])


def run_summary(code: str, **options: Any) -> dict[str, Any]:
    """Run PRELUDE + ``code`` and return the JSON summary it printed last."""
    summary: dict[str, Any] = scenario.run_json(
        PRELUDE + textwrap.dedent(code), **options
    )
    return summary


def assert_clean(summary: dict[str, Any]) -> None:
    """No child hung or failed, and the tally found every record once."""
    assert ([], []) == (summary["hung"], summary["failed"]), summary
    tally = Tally(**summary["tally"])
    assert CLEAN == tally, tally.sample


# -- 1. threads log while the main thread forks ---------------------------------

TORTURE = """
kind, path = {kind!r}, {path!r}
if kind == "file":
    handler = safelog.FileHandler(path, encoding="utf-8")
elif kind == "stream":
    handler = safelog.StreamHandler(open(path, "a", encoding="utf-8"))
else:  # "stderr": as with `2>file`, a description shared by all processes
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(fd, 2)
    os.close(fd)
    handler = safelog.StreamHandler(sys.stderr)
# mixed_exits: half the children leave by sys.exit (atexit, logging.shutdown,
# finalization), the others by os._exit, as multiprocessing's children do.
result = run_scenario(
    handler, forks={forks}, timeout={deadline}, log_path=pathlib.Path(path),
    threads=3, records_per_child=5, fork_interval=0.003, mixed_exits=True,
)
print_summary(**dataclasses.asdict(result))
"""


def check_torture(tmp_path: Path, kind: str, forks: int) -> None:
    code = TORTURE.format(
        kind=kind,
        forks=forks,
        path=str(tmp_path / "torture.log"),
        deadline=CHILD_DEADLINE,
    )
    result = ScenarioResult(**run_summary(code, env=BUFFERED_STDIO, timeout=240))
    assert forks == result.forks
    assert result.records > forks * 5, "the threads logged nothing"
    assert result.clean, result


HANDLER_KINDS = pytest.mark.parametrize("kind", ["file", "stream", "stderr"])


@HANDLER_KINDS
def test_threads_log_while_main_thread_forks(tmp_path: Path, kind: str) -> None:
    """40 forks while 3 threads log: no child hangs, every record of parent
    and children is written exactly once, and no line is torn."""
    check_torture(tmp_path, kind, forks=40)


@pytest.mark.torture
@HANDLER_KINDS
def test_threads_log_while_main_thread_forks_torture(tmp_path: Path, kind: str) -> None:
    """240 forks while 3 threads log: no hang, nothing lost, doubled or torn."""
    check_torture(tmp_path, kind, forks=240)


# -- 2. a thread busy in the stream's own lock (CPython gh-84579) ---------------

BUSY_STREAM = """
TARGET, HANDLER, FORKS, STOP_AT_FIRST_HANG = {target!r}, {handler!r}, {forks}, {stop}
read_end, stream, close_write_end = buffered_pipe_stream(TARGET)

received = []


def drain():
    # Reads everything, keeps all but the printer's dots (records have none).
    while True:
        data = os.read(read_end, 1 << 16)
        if not data:
            return
        received.append(data.replace(b".", b""))


stop = threading.Event()
chunk = "." * (1 << 16)


def printer():
    # Not logging: plain writes, which hold the BufferedWriter lock while the
    # pipe is full.  A child forked then inherits that lock held.
    n = 0
    while not stop.is_set():
        if n % 2:
            print(chunk, file=stream)
        else:
            stream.write(chunk + "\\n")
        n += 1


handler_class = safelog.StreamHandler if HANDLER == "safelog" else logging.StreamHandler
handler = handler_class(stream)
log = logging.getLogger("busy")
log.addHandler(handler)
log.propagate = False

drainer = threading.Thread(target=drain)
drainer.start()
busy = threading.Thread(target=printer)
busy.start()
time.sleep(0.05)
children = ForkedChildren({deadline})
forks = 0
for k in range(FORKS):
    forks += 1
    pid = os.fork()
    if pid == 0:
        log.warning(record_line(f"c{{k}}:0"))
        os._exit(0)
    children.add(pid, k)
    children.wait()
    if children.hung and STOP_AT_FIRST_HANG:
        break
stop.set()
busy.join()
close_write_end()
drainer.join(10)
# The printer's lines, their dots gone, leave blank lines: not the records'.
text = b"".join(received).decode("utf-8", "replace")
tally = count_records(
    re.sub("\\n+", "\\n", text).lstrip("\\n"),
    [f"c{{k}}:0" for k in children.exited_ok()],
)
print_summary(tally, forks=forks, hung=children.hung, failed=children.failed())
"""


def run_busy_stream(
    target: str, handler: str, *, forks: int, stop: bool, deadline: float
) -> dict[str, Any]:
    code = BUSY_STREAM.format(
        target=target, handler=handler, forks=forks, stop=stop, deadline=deadline
    )
    return run_summary(code, env=BUFFERED_STDIO)


BUSY_TARGETS = pytest.mark.parametrize("target", ["file-object", "stderr"])


@BUSY_TARGETS
def test_child_logs_while_thread_holds_stream_buffer_lock(target: str) -> None:
    """gh-84579: a child forked while another thread is inside a write to the
    same buffered stream (holding its io lock) logs through safelog's
    StreamHandler without hanging, and its record arrives exactly once."""
    summary = run_busy_stream(
        target, "safelog", forks=30, stop=False, deadline=CHILD_DEADLINE
    )
    assert 30 == summary["forks"]
    assert_clean(summary)


@BUSY_TARGETS
def test_stdlib_streamhandler_child_hangs_comparison(target: str) -> None:
    """COMPARISON: the same scenario with logging.StreamHandler hangs a child
    (it blocks on the io lock a vanished parent thread held), so the test
    above is known to catch the defect."""
    summary = run_busy_stream(target, "stdlib", forks=30, stop=True, deadline=2.0)
    assert 1 <= len(summary["hung"]), summary


# -- 3. a record in flight at fork is written twice -----------------------------

IN_FLIGHT = """
STREAM, FORKS, BUDGET, path = {stream!r}, {forks}, {budget}, {path!r}
# Switch threads as often as possible, so forks land anywhere in an emit();
# on one CPU, forks land between write() and flush() about twice as often.
os.sched_setaffinity(0, {{min(os.sched_getaffinity(0))}})
sys.setswitchinterval(1e-6)
if STREAM == "text-layer":
    # A record in flight waits in the text layer only: no BufferedWriter
    # below it, so no io lock either.
    stream = io.TextIOWrapper(io.FileIO(path, "a"), encoding="utf-8")
else:
    stream = open(path, "a", encoding="utf-8")
handler = safelog.StreamHandler(stream)
log = logging.getLogger("inflight")
log.addHandler(handler)
log.setLevel(logging.INFO)
log.propagate = False

stop = threading.Event()
logged = [0]
active = [False]


def chatter():
    # Logs only around each fork, which keeps the file small.
    i = 0
    while not stop.is_set():
        if not active[0]:
            time.sleep(0.0005)
            continue
        log.info(record_line(f"p0:{{i}}"))
        i += 1
        logged[0] = i


thread = threading.Thread(target=chatter)
thread.start()
time.sleep(0.02)
children = ForkedChildren({deadline})
forks = 0
started = time.monotonic()
while forks < FORKS and time.monotonic() - started < BUDGET:
    active[0] = True
    time.sleep(0.002)
    pid = os.fork()
    active[0] = False
    if pid == 0:
        log.info(record_line(f"c{{forks}}:0"))
        sys.exit(0)  # a normal exit flushes what the child holds
    children.add(pid, forks)
    children.wait()
    forks += 1
stop.set()
thread.join()
handler.close()
stream.close()
with open(path, "rb") as f:
    text = f.read().decode("utf-8", "replace")
expected = [f"p0:{{i}}" for i in range(logged[0])]
expected += [f"c{{k}}:0" for k in children.exited_ok()]
print_summary(
    count_records(text, expected),
    forks=forks, hung=children.hung, failed=children.failed(),
)
"""


def run_in_flight(tmp_path: Path, stream: str, **options: Any) -> dict[str, Any]:
    code = IN_FLIGHT.format(
        stream=stream, path=str(tmp_path / "inflight.log"), **options
    )
    return run_summary(code, env=BUFFERED_STDIO, timeout=150)


STALLED_FLUSH = """
HANDLER, path, PAUSE = {handler!r}, {path!r}, {pause!r}
# Buffers in the text layer only: no io lock, so a stdlib child can only
# duplicate, never hang.
stream = io.TextIOWrapper(io.FileIO(path, "a"), encoding="utf-8")
handler_class = safelog.StreamHandler if HANDLER == "safelog" else logging.StreamHandler
handler = handler_class(stream)
handler.setFormatter(logging.Formatter("%(message)s"))
log = logging.getLogger("stalled")
log.addHandler(handler)
log.setLevel(logging.INFO)
log.propagate = False
flush_now = handler.flush
in_window = threading.Event()


def flush_after_a_pause():
    # A logging thread preempted between its write() and its flush().
    in_window.set()
    time.sleep(PAUSE)
    flush_now()


handler.flush = flush_after_a_pause
children = ForkedChildren(5.0)
for number in range(5):
    in_window.clear()
    thread = threading.Thread(target=log.info, args=(f"parent {{number}}",))
    thread.start()
    in_window.wait()
    pid = os.fork()
    if pid == 0:
        sys.exit(0)  # a normal exit flushes what the child inherited
    children.add(pid, number)
    children.wait()
    thread.join()
handler.close()
stream.close()
with open(path, encoding="utf-8") as f:
    lines = f.read().splitlines()
print_summary(
    hung=children.hung, times_written=[lines.count(f"parent {{n}}") for n in range(5)]
)
"""


def run_stalled_flush(tmp_path: Path, handler: str) -> dict[str, Any]:
    # The stdlib takes no lock before fork: a long pause makes sure the fork
    # lands inside it, even on a stalled machine.  For safelog the pause
    # stays well within the fork timeout (0.1 s), which it waits out.
    pause = 0.5 if handler == "stdlib" else 0.02
    code = STALLED_FLUSH.format(
        handler=handler, path=str(tmp_path / "stalled.log"), pause=pause
    )
    return run_summary(code, env=BUFFERED_STDIO)


def test_stdlib_streamhandler_duplicates_record_in_flight_comparison(
    tmp_path: Path,
) -> None:
    """COMPARISON: with logging.StreamHandler, a fork while a logging thread
    is between its write() and its flush() copies the pending record into the
    child, which writes it again at exit: every record is written twice."""
    summary = run_stalled_flush(tmp_path, "stdlib")
    assert {"hung": [], "times_written": [2] * 5} == summary


def test_record_between_write_and_flush_at_fork_is_written_once(
    tmp_path: Path,
) -> None:
    """The same fork with safelog.StreamHandler: the parent waits (within the
    fork timeout) for the thread to finish its record, and the child writes
    through the descriptor, never flushing the stream it inherited, so every
    record is written exactly once."""
    summary = run_stalled_flush(tmp_path, "safelog")
    assert {"hung": [], "times_written": [1] * 5} == summary


@pytest.mark.parametrize("stream", ["text-layer", "buffered-file"])
def test_no_record_in_flight_is_duplicated(tmp_path: Path, stream: str) -> None:
    """The scenario that makes the stdlib write a record twice: with safelog's
    StreamHandler nothing is duplicated, lost or torn, and no child hangs."""
    summary = run_in_flight(
        tmp_path, stream, forks=60, budget=100.0, deadline=CHILD_DEADLINE
    )
    assert_clean(summary)


@pytest.mark.torture
@pytest.mark.parametrize("stream", ["text-layer", "buffered-file"])
def test_no_record_in_flight_is_duplicated_torture(tmp_path: Path, stream: str) -> None:
    """As above, over 400 forks."""
    summary = run_in_flight(
        tmp_path, stream, forks=400, budget=120.0, deadline=CHILD_DEADLINE
    )
    assert_clean(summary)


# -- 4. a fork that outlasts the fork timeout -----------------------------------

OUTLASTED = """
read_end, stream, close_write_end = buffered_pipe_stream({target!r})
write_end = stream.fileno()
handler = safelog.StreamHandler(stream)
handler.setFormatter(logging.Formatter("%(message)s"))
log = logging.getLogger("outlasted")
log.addHandler(handler)
log.propagate = False

# Fill the pipe, so the next flush blocks in write() holding the handler lock
# and the buffer lock, with the record in the buffer.
os.set_blocking(write_end, False)
try:
    while True:
        os.write(write_end, b"." * 4096)
except BlockingIOError:
    pass
os.set_blocking(write_end, True)
stuck = threading.Thread(target=log.warning, args=("[stuck record]",))
stuck.start()
time.sleep(0.2)
pid = os.fork()  # waits the fork timeout (0.1 s) for the handler lock, in vain
if pid == 0:
    log.warning("[child record]")
    sys.exit(0)  # a normal exit flushes and finalizes what the child inherited
received = []
reader = threading.Thread(
    target=lambda: received.extend(iter(lambda: os.read(read_end, 1 << 16), b""))
)
reader.start()
children = ForkedChildren({deadline})
children.add(pid, 0)
children.wait()
stuck.join()
handler.close()
close_write_end()
reader.join(10)
data = b"".join(received)
print_summary(
    hung=children.hung, failed=children.failed(),
    stuck=data.count(b"[stuck record]"), child=data.count(b"[child record]"),
)
"""


@BUSY_TARGETS
def test_fork_that_outlasts_timeout_writes_nothing_twice(target: str) -> None:
    """A thread blocked in a write to a full pipe holds the handler lock past
    the fork timeout, its record still in the stream's buffer, whose lock it
    holds too: the fork goes ahead.  The child logs at once, exits normally
    (which flushes and finalizes the inherited stream) without waiting on that
    lock or writing the parent's record again; every record arrives once."""
    summary = run_summary(
        OUTLASTED.format(target=target, deadline=CHILD_DEADLINE), env=BUFFERED_STDIO
    )
    assert {"hung": [], "failed": [], "stuck": 1, "child": 1} == summary


# -- 5. multiprocessing: fork, forkserver and spawn children, one file ----------

MP_MODULE = """
import logging

import safelog
from safelog._harness import record_line


def configure(path):
    # The one configuration: the parent runs it, and so does every spawned or
    # forkserver child (a forked child inherits it).
    handler = safelog.FileHandler(path, encoding="utf-8")
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    return handler


def work(path, index, count, configure_first):
    if configure_first:
        configure(path)
    log = logging.getLogger("mp.child")
    for i in range(count):
        log.info(record_line(f"c{index}:{i}"))
"""

MP_SCENARIO = """
import multiprocessing

sys.path.insert(0, os.getcwd())
import mp_children

METHOD, PROCESSES, PER_PROCESS = {method!r}, {processes}, {per_process}
path = os.path.join(os.getcwd(), "mp.log")
handler = mp_children.configure(path)
threads = LoggingThreads(logging.getLogger("mp.parent"), 2)
context = multiprocessing.get_context(METHOD)
processes = [
    context.Process(
        target=mp_children.work, args=(path, n, PER_PROCESS, METHOD != "fork")
    )
    for n in range(PROCESSES)
]
for process in processes:
    process.start()
deadline = time.monotonic() + 30
hung, failed = [], []
for n, process in enumerate(processes):
    process.join(max(0.0, deadline - time.monotonic()))
    if process.is_alive():
        process.kill()
        process.join()
        hung.append(n)
    elif process.exitcode != 0:
        failed.append(n)
expected = threads.stop()
handler.close()
with open(path, "rb") as f:
    text = f.read().decode("utf-8", "replace")
expected += [
    f"c{{n}}:{{i}}"
    for n in range(PROCESSES) if n not in hung + failed
    for i in range(PER_PROCESS)
]
print_summary(count_records(text, expected), hung=hung, failed=failed)
"""


def check_multiprocessing(tmp_path: Path, method: str, processes: int) -> None:
    (tmp_path / "mp_children.py").write_text(MP_MODULE, encoding="utf-8")
    code = MP_SCENARIO.format(method=method, processes=processes, per_process=300)
    summary = run_summary(code, cwd=tmp_path, env=BUFFERED_STDIO, timeout=120)
    assert_clean(summary)


START_METHODS = pytest.mark.parametrize("method", ["fork", "forkserver", "spawn"])


@START_METHODS
def test_multiprocessing_children_share_one_file(tmp_path: Path, method: str) -> None:
    """Processes started with each start method write to one file through the
    same safelog.FileHandler configuration while parent threads log: every
    record exactly once, none torn, no process hangs."""
    check_multiprocessing(tmp_path, method, processes=4)


@pytest.mark.torture
@START_METHODS
def test_multiprocessing_children_share_one_file_torture(
    tmp_path: Path, method: str
) -> None:
    """As above with 24 processes at once."""
    check_multiprocessing(tmp_path, method, processes=24)


# -- what the child writes is what the stdlib writes ----------------------------

CHILD_BYTES = """
path = {path!r}
stream = open(path, "w", encoding={encoding!r}, errors={errors!r})
stream.write("parent\\n")
stream.flush()
handler = safelog.StreamHandler(stream)
handler.terminator = {terminator!r}
log = logging.getLogger("bytes")
log.addHandler(handler)
log.propagate = False
pid = os.fork()
if pid == 0:
    log.warning("child café ✓ %s", "世界")
    os._exit(0)
children = ForkedChildren(5.0)
children.add(pid, 0)
children.wait()
log.warning("parent again")
stream.close()
print_summary(hung=children.hung, failed=children.failed())
"""


@pytest.mark.parametrize(
    ("encoding", "errors", "terminator"),
    [
        ("utf-8", "strict", "\n"),
        ("latin-1", "replace", "\n"),
        ("ascii", "backslashreplace", "\r\n"),
        ("utf-16", "strict", "\n"),
        ("utf-8-sig", "strict", " | "),
    ],
)
def test_child_writes_same_bytes_as_stdlib(
    tmp_path: Path, encoding: str, errors: str, terminator: str
) -> None:
    """A child's record, written past the inherited buffer, has the stream's
    encoding, errors and terminator, and no second byte order mark."""
    path = tmp_path / "child.log"
    code = CHILD_BYTES.format(
        path=str(path), encoding=encoding, errors=errors, terminator=terminator
    )
    summary = run_summary(code)
    assert {"hung": [], "failed": []} == summary
    expected = f"parent\nchild café ✓ 世界{terminator}parent again{terminator}"
    reference = tmp_path / "reference.log"
    with open(reference, "w", encoding=encoding, errors=errors) as stream:
        stream.write(expected)
    assert reference.read_bytes() == path.read_bytes()


ONLY_REFERENCE = """
path = {path!r}
# The handler holds the only reference to this stream, as with
# StreamHandler(open(...)).
handler = safelog.StreamHandler(open(path, "a", encoding="utf-8"))
log = logging.getLogger("only")
log.addHandler(handler)
log.propagate = False
pid = os.fork()
if pid == 0:
    log.warning("child")
    os._exit(0)
children = ForkedChildren(5.0)
children.add(pid, 0)
children.wait()
log.warning("parent")
handler.stream.close()
print_summary(hung=children.hung, failed=children.failed())
"""


def test_child_logs_when_handler_holds_only_reference_to_stream(
    tmp_path: Path,
) -> None:
    """A child's StreamHandler keeps the stream it inherited referenced, so
    the stream is not finalized in the child, closing the descriptor the
    child's records go to (EBADF on every record before the fix)."""
    path = tmp_path / "only.log"
    outcome = scenario.run_ok(
        PRELUDE + textwrap.dedent(ONLY_REFERENCE.format(path=str(path)))
    )
    assert {"hung": [], "failed": []} == json.loads(outcome.stdout)
    assert "" == outcome.stderr
    assert "child\nparent\n" == path.read_text(encoding="utf-8")
