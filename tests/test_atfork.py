"""The at-fork registry: one hook, weakly held participants, their order, the
shared deadline, and fault isolation.

Everything that forks runs in a child interpreter (``scenario.run_ok``), and
each forked child there has a deadline after which it is killed and reported.
"""

from __future__ import annotations

import json
import math
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest

import safelog
import scenario
from safelog import _atfork

PRELUDE = """
import gc, json, logging, logging.config, os, signal, sys, threading, time
import warnings, weakref

import safelog
from safelog import _atfork
from safelog._harness import wait_for_children

warnings.filterwarnings(
    "ignore", message=r"This process .* is multi-threaded", category=DeprecationWarning
)


class Recorder:
    # A participant that records every step it is asked to take.
    def __init__(self, name, events):
        self.name, self.events = name, events

    def before_fork(self, deadline):
        self.events.append(["before", self.name])

    def after_fork_in_parent(self):
        self.events.append(["parent", self.name])

    def after_fork_in_child(self):
        self.events.append(["child", self.name])


class Slow(Recorder):
    # Its before step is long enough for a signal to land inside the steps.
    def before_fork(self, deadline):
        super().before_fork(deadline)
        time.sleep(0.3)


def fork_and_report(in_child, deadline=5.0):
    # Fork; the child sends in_child()'s JSON value back through a pipe and
    # leaves with os._exit.  Returns (value or None, status), status being
    # "hung" when the child missed its deadline and was killed.
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(read_end)
            os.write(write_end, json.dumps(in_child()).encode())
        except BaseException:
            code = 70
        os._exit(code)
    os.close(write_end)
    code = wait_for_children({pid: time.monotonic() + deadline})[pid]
    if code is None:
        os.close(read_end)
        return None, "hung"
    with os.fdopen(read_end, "rb") as pipe:
        data = pipe.read()
    return (json.loads(data) if data else None), code
"""


def run_scenario(
    code: str, *, header: str = "", **options: Any
) -> tuple[dict[str, Any], str]:
    """Run ``header`` + PRELUDE + ``code``; return the JSON it printed last,
    and stderr."""
    script = textwrap.dedent(header) + PRELUDE + textwrap.dedent(code)
    outcome = scenario.run_ok(script, **options)
    return json.loads(outcome.stdout.strip().splitlines()[-1]), outcome.stderr


def test_registers_one_hook_however_many_handlers() -> None:
    """Importing safelog registers one at-fork hook, and each participant sees
    each fork step once, however many handlers exist."""
    summary, _ = run_scenario(
        """
        import importlib

        importlib.import_module("safelog._handlers")
        importlib.import_module("safelog._atfork")
        handlers = [safelog.StreamHandler(), safelog.FileHandler(os.devnull)]
        handlers += [safelog.FileHandler(os.devnull, delay=True) for _ in range(3)]
        os.register_at_fork = real_register_at_fork
        events = []
        recorder = Recorder("only", events)
        _atfork.register(recorder)
        child_events, status = fork_and_report(lambda: events)
        print(json.dumps({
            "registered": [m for m in registered if m.startswith("safelog")],
            "parent": events, "child": child_events, "status": status,
        }))
        """,
        header="""
        import os

        registered = []
        real_register_at_fork = os.register_at_fork


        def counting_register_at_fork(**hooks):
            # A spy, not a stand-in: every hook is still registered.
            registered.append(next(iter(hooks.values())).__module__)
            real_register_at_fork(**hooks)


        os.register_at_fork = counting_register_at_fork
        """,
    )
    assert {
        "registered": ["safelog._atfork"],
        "parent": [["before", "only"], ["parent", "only"]],
        "child": [["before", "only"], ["child", "only"]],
        "status": 0,
    } == summary


def test_collected_handler_leaves_registry() -> None:
    """The registry holds participants weakly: a handler (or any participant)
    nobody else references is collected and leaves the registry."""
    summary, _ = run_scenario(
        """
        def participants():
            gc.collect()
            return len(list(_atfork._participants.values()))

        baseline = participants()
        handlers = [safelog.StreamHandler(), safelog.FileHandler(os.devnull)]
        recorder = Recorder("gone", [])
        _atfork.register(recorder)
        registered = participants()
        refs = [weakref.ref(obj) for obj in [*handlers, recorder]]
        handlers[1].close()
        del handlers, recorder
        left = participants()
        _, status = fork_and_report(lambda: None)
        print(json.dumps({
            "added": registered - baseline, "removed": registered - left,
            "alive": [ref() is not None for ref in refs], "status": status,
        }))
        """
    )
    assert {
        "added": 3,
        "removed": 3,
        "alive": [False, False, False],
        "status": 0,
    } == summary


def test_steps_run_newest_first_before_and_oldest_first_after() -> None:
    """before_fork runs newest participant first; after_fork_in_parent and
    after_fork_in_child run oldest first, the reverse (a lock order)."""
    summary, _ = run_scenario(
        """
        events = []
        recorders = [Recorder(name, events) for name in "ABC"]
        for recorder in recorders:
            _atfork.register(recorder)
        child_events, status = fork_and_report(lambda: events)
        print(json.dumps({"parent": events, "child": child_events, "status": status}))
        """
    )
    before = [["before", "C"], ["before", "B"], ["before", "A"]]
    assert {
        "parent": [*before, ["parent", "A"], ["parent", "B"], ["parent", "C"]],
        "child": [*before, ["child", "A"], ["child", "B"], ["child", "C"]],
        "status": 0,
    } == summary


def test_participants_ahead_go_first_before_and_last_after() -> None:
    """A participant registered ahead (a queue handler: its writer calls the
    others) takes its before step before every plain one, whatever their
    age, and its after steps after theirs; safelog.QueueHandler registers
    so, also when its named targets are made after it."""
    summary, _ = run_scenario(
        """
        events = []
        old, ahead, new = (Recorder(name, events) for name in ("old", "Q", "new"))
        _atfork.register(old)
        _atfork.register(ahead, ahead=True)
        _atfork.register(new)
        child_events, status = fork_and_report(lambda: events)
        queued = safelog.QueueHandler(["made-later"])
        target = safelog.FileHandler(os.devnull)
        target.set_name("made-later")
        order = [type(p).__name__ for p in _atfork._in_after_order()]
        print(json.dumps({
            "parent": events, "child": child_events, "status": status,
            "last": order[-1], "target_before_it": "FileHandler" in order,
        }))
        """
    )
    before = [["before", "Q"], ["before", "new"], ["before", "old"]]
    assert {
        "parent": [*before, ["parent", "old"], ["parent", "new"], ["parent", "Q"]],
        "child": [*before, ["child", "old"], ["child", "new"], ["child", "Q"]],
        "status": 0,
        "last": "QueueHandler",
        "target_before_it": True,
    } == summary


def test_shared_deadline_bounds_fork_when_handler_locks_are_stuck(
    tmp_path: Any,
) -> None:
    """Threads stuck holding five handlers' locks delay a fork by about the
    fork timeout in total (one shared deadline, not one per handler), and the
    child still logs through every one of those handlers."""
    summary, _ = run_scenario(
        f"""
        TIMEOUT = 1.0
        safelog.set_fork_timeout(TIMEOUT)
        paths = [os.path.join({str(tmp_path)!r}, f"h{{n}}.log") for n in range(5)]
        handlers = [safelog.FileHandler(path) for path in paths]
        log = logging.getLogger("stuck")
        log.propagate = False
        for handler in handlers:
            log.addHandler(handler)
        release = threading.Event()
        holding = []


        def stuck(handler):
            with handler.lock:  # as a thread blocked in a slow write would
                holding.append(handler)
                release.wait(60)


        threads = [threading.Thread(target=stuck, args=(h,)) for h in handlers]
        for thread in threads:
            thread.start()
        while len(holding) < len(handlers):
            time.sleep(0.01)


        def in_child():
            log.warning("child")
            return "logged"


        started = time.monotonic()
        value, status = fork_and_report(in_child)
        # fork_and_report also waits for the child: time the fork alone too.
        elapsed = time.monotonic() - started
        release.set()
        for thread in threads:
            thread.join()
        log.warning("parent")  # the parent's locks were left as they were
        for handler in handlers:
            handler.close()
        contents = [open(path).read() for path in paths]
        print(json.dumps({{
            "value": value, "status": status, "elapsed": elapsed,
            "contents": contents,
        }}))
        """
    )
    elapsed = summary.pop("elapsed")
    assert {
        "value": "logged",
        "status": 0,
        "contents": ["child\nparent\n"] * 5,
    } == summary
    # 1 s shared; one deadline per handler would take 5 s.  The margin is for
    # a stalled machine, and the child's own exit is timed too.
    assert 0.9 <= elapsed < 4.0


def test_failing_participant_does_not_stop_the_others() -> None:
    """A participant whose steps raise is reported, and every other
    participant still takes each step; later forks and logging still work."""
    summary, stderr = run_scenario(
        """
        class Failing:
            def before_fork(self, deadline):
                raise RuntimeError("before_fork failed on purpose")

            def after_fork_in_parent(self):
                raise RuntimeError("after_fork_in_parent failed on purpose")

            def after_fork_in_child(self):
                raise RuntimeError("after_fork_in_child failed on purpose")


        events = []
        first, failing, last = Recorder("A", events), Failing(), Recorder("C", events)
        for participant in (first, failing, last):
            _atfork.register(participant)
        handler = safelog.StreamHandler(sys.stdout)
        log = logging.getLogger("after")
        log.addHandler(handler)
        log.propagate = False
        child_events, status = fork_and_report(lambda: events)
        parent_events = events[:]
        second_child, second_status = fork_and_report(lambda: "forked again")
        print(json.dumps({
            "parent": parent_events, "child": child_events, "status": status,
            "second": [second_child, second_status],
        }))
        """
    )
    before = [["before", "C"], ["before", "A"]]
    assert {
        "parent": [*before, ["parent", "A"], ["parent", "C"]],
        "child": [*before, ["child", "A"], ["child", "C"]],
        "status": 0,
        "second": ["forked again", 0],
    } == summary
    assert "before_fork failed on purpose" in stderr


def test_fork_from_a_signal_handler_inside_a_fork(tmp_path: Any) -> None:
    """A fork made by a signal handler that interrupted another fork while it
    waited in safelog's before-fork step completes, as it does with the
    standard handlers; both children log at once, and the parent goes on."""
    path = tmp_path / "nested.log"
    summary, _ = run_scenario(
        f"""
        events = []
        slow = Slow("slow", events)  # held: the registry holds it weakly
        _atfork.register(slow)
        handler = safelog.FileHandler({str(path)!r})
        log = logging.getLogger("nested")
        log.addHandler(handler)
        log.propagate = False
        inner = []

        def on_alarm(signum, frame):
            pid = os.fork()
            if pid == 0:
                log.warning("inner child")
                os._exit(0)
            inner.append(pid)

        signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        pid = os.fork()
        if pid == 0:
            log.warning("outer child")
            os._exit(0)
        statuses = [os.waitpid(child, 0)[1] for child in [pid, *inner]]
        log.warning("parent")
        child_events, status = fork_and_report(lambda: "forked again")
        print(json.dumps({{
            "inner": len(inner), "statuses": statuses, "again": [child_events, status],
            "before_steps": events.count(["before", "slow"]),
        }}))
        """,
        timeout=30,
    )
    assert {
        "inner": 1,
        "statuses": [0, 0],
        "again": ["forked again", 0],
        "before_steps": 2,  # the outer fork, and the one after: not the nested
    } == summary
    assert ["inner child", "outer child", "parent"] == sorted(
        path.read_text().splitlines()
    )


def test_nested_fork_child_that_returns_finishes_the_outer_fork(
    tmp_path: Any,
) -> None:
    """The child of a fork made by a signal handler inside another fork's
    before steps returns from the handler, so it finishes the outer fork as
    a parent: its locks balance, and it logs, through a queue handler, and
    forks again as any process does."""
    path = tmp_path / "nested.log"
    summary, stderr = run_scenario(
        f"""
        events = []
        handler = safelog.QueueHandler(safelog.FileHandler({str(path)!r}))
        slow = Slow("slow", events)  # held: the registry holds it weakly
        _atfork.register(slow)
        log = logging.getLogger("nested")
        log.addHandler(handler)
        log.propagate = False
        inner = []

        def on_alarm(signum, frame):
            pid = os.fork()
            inner.append("nested child" if pid == 0 else pid)

        signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        pid = os.fork()
        if pid == 0:
            os._exit(0)  # a child of the outer fork, in either process
        os.waitpid(pid, 0)
        if inner == ["nested child"]:
            try:
                log.warning("nested child logs")
                value, status = fork_and_report(lambda: "forked again")
                log.warning("nested child forked again: %s %s", value, status)
                handler.flush()
                nested = json.dumps({{"nested child depth": _atfork._fork_depth}})
                os.write(2, nested.encode() + b"\\n")
            finally:
                os._exit(0)
        for child in inner:
            os.waitpid(child, 0)
        print(json.dumps({{"depth": _atfork._fork_depth}}))
        """,
        timeout=30,
    )
    assert {"depth": 0} == summary
    assert '{"nested child depth": 0}' in stderr.splitlines()
    assert "cannot release" not in stderr
    assert [
        "nested child logs",
        "nested child forked again: forked again 0",
    ] == path.read_text().splitlines()


def test_fork_while_another_thread_runs_dict_config(tmp_path: Any) -> None:
    """A fork while another thread is inside logging.config.dictConfig (which
    holds the logging module lock while it creates, and so registers, and
    closes safelog handlers) does not deadlock, and the child can log."""
    summary, _ = run_scenario(
        f"""
        directory = {str(tmp_path)!r}


        def config(n):
            return {{
                "version": 1,
                "disable_existing_loggers": False,
                "handlers": {{
                    name: {{
                        "class": "safelog.FileHandler",
                        "filename": os.path.join(directory, f"{{name}}{{n % 3}}.log"),
                    }}
                    for name in ("a", "b")
                }},
                "root": {{"handlers": ["a", "b"], "level": "INFO"}},
            }}


        stop = threading.Event()
        configured = [0]


        def reconfigure():
            while not stop.is_set() and configured[0] < 5000:
                logging.config.dictConfig(config(configured[0]))
                configured[0] += 1


        def in_child():
            logging.getLogger("child").info("child record")
            logging.config.dictConfig(config(0))
            logging.getLogger("child").info("child record after dictConfig")
            return "ok"


        thread = threading.Thread(target=reconfigure)
        thread.start()
        outcomes = []
        for _ in range(40):
            outcomes.append(fork_and_report(in_child))
            time.sleep(0.005)
        stop.set()
        thread.join()
        logging.shutdown()
        print(json.dumps({{"outcomes": outcomes, "configured": configured[0]}}))
        """
    )
    assert [["ok", 0]] * 40 == summary["outcomes"]
    assert 0 < summary["configured"]


# -- set_fork_timeout ---------------------------------------------------------


@pytest.fixture
def fork_timeout() -> Iterator[None]:
    """Restore the process-wide fork timeout after the test."""
    saved = safelog.get_fork_timeout()
    yield
    safelog.set_fork_timeout(saved)


@pytest.mark.usefixtures("fork_timeout")
@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("x", TypeError),
        (None, TypeError),
        (True, TypeError),
        (-1, ValueError),
        (-0.5, ValueError),
        (math.nan, ValueError),
        (math.inf, ValueError),
        (-math.inf, ValueError),
    ],
)
def test_set_fork_timeout_rejects_bad_value(value: Any, error: type) -> None:
    """A timeout that is not a finite number >= 0 is refused with an error
    naming the value, and the timeout is unchanged."""
    before = safelog.get_fork_timeout()
    with pytest.raises(error) as caught:
        safelog.set_fork_timeout(value)
    assert repr(value) in str(caught.value)
    assert before == safelog.get_fork_timeout()


@pytest.mark.usefixtures("fork_timeout")
@pytest.mark.parametrize("value", [0, 0.0, 2, 0.25])
def test_set_fork_timeout_accepts_finite_non_negative(value: float) -> None:
    """Zero and positive ints and floats are accepted, and read back as float."""
    safelog.set_fork_timeout(value)
    assert (float, float(value)) == (
        type(safelog.get_fork_timeout()),
        safelog.get_fork_timeout(),
    )


def test_default_fork_timeout() -> None:
    """The default timeout is DEFAULT_FORK_TIMEOUT, 0.1 s."""
    assert (0.1, 0.1) == (safelog.DEFAULT_FORK_TIMEOUT, _atfork.DEFAULT_FORK_TIMEOUT)
