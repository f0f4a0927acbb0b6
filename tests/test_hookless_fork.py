"""Forks that run no Python at-fork hook, as uWSGI's workers (without
``--py-call-uwsgi-fork-hooks``) and C code calling ``fork()`` are made.

The scenario forks with libc's ``fork()`` through ``ctypes.PyDLL``, which
keeps the GIL across the call: a real fork, with no ``os.register_at_fork``
hook run in either process.  At each fork another thread holds the handler
lock, sleeping inside the formatter: the child inherits the lock held by a
thread it does not have.  (That thread sleeps, not waiting for the GIL: a
child of a hookless fork also inherits the GIL's own state, and a thread
waiting for it at the fork makes the child hang on its first release of
the GIL, whatever the handlers do.  Python's own at-fork step repairs that;
servers that skip it must not fork while Python threads run.)  Each child
logs and leaves through ``os._exit``.  Each scenario runs in a child
interpreter with a hard timeout.
"""

from __future__ import annotations

import collections
import json
import sys
from pathlib import Path

import pytest

from scenario import run_ok

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="no fork() on Windows")

FORKS = 5

SCENARIO = """
import ctypes, json, logging, logging.handlers, os, sys, threading, time
import safelog
from safelog._harness import wait_for_children

kind, path, forks = sys.argv[1], sys.argv[2], int(sys.argv[3])
c_fork = ctypes.PyDLL(None).fork  # holds the GIL; runs no at-fork hook
inside = threading.Event()

class Slow(logging.Formatter):
    # Holds the handler lock for a while, with the GIL released.
    def format(self, record):
        if record.msg.startswith("slow"):
            inside.set()
            time.sleep(0.3)
        return super().format(record)

files = {
    "stdlib FileHandler": lambda: logging.FileHandler(path),
    "FileHandler": lambda: safelog.FileHandler(path),
    "StreamHandler": lambda: safelog.StreamHandler(open(path, "a")),
    "RotatingFileHandler": lambda: safelog.RotatingFileHandler(
        path, maxBytes=200, backupCount=1000),
}
files["install()"] = files["stdlib FileHandler"]
written_by = files.get(kind) or files["FileHandler"]
target = written_by()
target.setFormatter(Slow("%(message)s"))
handler = safelog.QueueHandler([target]) if kind == "QueueHandler" else target
log = logging.getLogger("hookless")
log.addHandler(handler)
log.propagate = False
if kind == "install()":
    safelog.install()  # converts the standard FileHandler in place
hung = 0
for number in range(forks):
    inside.clear()
    slow = threading.Thread(target=log.warning, args=(f"slow{number}",))
    slow.start()
    assert inside.wait(10)
    pid = c_fork()
    if pid == 0:
        log.warning("child%d/0", number)
        log.warning("child%d/1", number)
        os._exit(0)
    hung += wait_for_children({pid: time.monotonic() + 5})[pid] is None
    slow.join()
    if hung:
        break
handler.close()
print(json.dumps({"hung": hung}))
"""


def _lines(directory: Path) -> list[str]:
    lines = []
    for file in sorted(directory.glob("app.log*")):
        lines += file.read_text().splitlines()
    return lines


@pytest.mark.parametrize(
    "kind",
    [
        "FileHandler",
        "StreamHandler",
        "RotatingFileHandler",
        "QueueHandler",
        "install()",
    ],
)
def test_child_of_a_hookless_fork_logs_at_once(kind: str, tmp_path: Path) -> None:
    """Children forked without at-fork hooks while another thread holds the
    handler lock: none hangs, each child's records are written once, and
    the parent's record in progress is written once, by the parent."""
    outcome = run_ok(
        SCENARIO, args=(kind, str(tmp_path / "app.log"), str(FORKS)), timeout=120
    )
    assert 0 == json.loads(outcome.stdout.splitlines()[-1])["hung"]
    expected = [f"slow{n}" for n in range(FORKS)]
    expected += [f"child{n}/{i}" for n in range(FORKS) for i in range(2)]
    lines = _lines(tmp_path)
    assert [] == [line for line, n in collections.Counter(lines).items() if n > 1]
    assert sorted(expected) == sorted(lines)


def test_stdlib_child_of_a_hookless_fork_hangs_comparison(tmp_path: Path) -> None:
    """The comparison: the standard FileHandler's child hangs on the lock
    the sleeping thread held at the fork."""
    outcome = run_ok(
        SCENARIO,
        args=("stdlib FileHandler", str(tmp_path / "app.log"), str(FORKS)),
        timeout=120,
    )
    assert 1 == json.loads(outcome.stdout.splitlines()[-1])["hung"]
