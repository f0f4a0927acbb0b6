"""safelog.WatchedFileHandler: the standard handler's reopening, with
safelog's fork guarantees."""

from __future__ import annotations

import logging
import logging.handlers
import os
from collections import Counter
from pathlib import Path

import pytest

import safelog
from scenario import run_ok


def rotate_and_log(handler: logging.Handler, directory: Path) -> dict[str, bytes]:
    """Log, move the file away (as logrotate does), log, delete it, log;
    return the files left in ``directory``."""
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.Logger("app")
    logger.addHandler(handler)
    logger.warning("before the move é")
    os.rename(directory / "app.log", directory / "app.log.1")
    logger.warning("after the move")
    os.remove(directory / "app.log")
    logger.warning("after the delete")
    handler.close()
    return {path.name: path.read_bytes() for path in sorted(directory.iterdir())}


def test_reopens_as_stdlib(tmp_path: Path) -> None:
    """After a move and a delete, the files hold the standard handler's
    bytes."""
    results = []
    for cls in (logging.handlers.WatchedFileHandler, safelog.WatchedFileHandler):
        directory = tmp_path / cls.__module__
        directory.mkdir()
        handler = cls(directory / "app.log", encoding="utf-8")
        results.append(rotate_and_log(handler, directory))
    assert {
        "app.log": b"WARNING after the delete\n",
        "app.log.1": "WARNING before the move é\n".encode(),
    } == results[1]
    assert results[0] == results[1]


def test_delay_as_stdlib(tmp_path: Path) -> None:
    """With delay=True nothing is created before the first record, and the
    files after a move and a delete are the standard handler's."""
    results = []
    for cls in (logging.handlers.WatchedFileHandler, safelog.WatchedFileHandler):
        directory = tmp_path / cls.__module__
        directory.mkdir()
        handler = cls(directory / "app.log", delay=True)
        assert [] == list(directory.iterdir())
        results.append(rotate_and_log(handler, directory))
    assert results[0] == results[1]


def test_writes_through_a_descriptor_stream(tmp_path: Path) -> None:
    """Records go straight to the descriptor, in one write each: nothing is
    pending in a buffer that a forked child could write again."""
    handler = safelog.WatchedFileHandler(tmp_path / "app.log")
    handler.emit(logging.makeLogRecord({"msg": "one"}))
    assert isinstance(handler.stream, safelog.DescriptorStream)
    assert b"one\n" == (tmp_path / "app.log").read_bytes()
    handler.close()


def logrotate_scenario(
    logs: Path, cls: str, mode: str, *, thread: bool = True
) -> tuple[set[str], Counter[str]]:
    """Six forked children (and a parent thread, if ``thread``) log through
    ``cls`` while the file is moved away again and again, and recreated
    empty (logrotate's ``create``); return the records expected and how
    often each arrived."""
    outcome = run_ok(
        f"""
        import logging, logging.handlers, os, threading, time
        import safelog
        path = {str(logs / "app.log")!r}
        handler = {cls}(path, mode={mode!r})
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger = logging.getLogger("watched")
        logger.setLevel(logging.INFO)
        logger.addHandler(handler)
        stop = threading.Event()
        def parent_thread():
            seq = 0
            while not stop.is_set() and {thread!r}:
                logger.info("<thread:%d>", seq)
                seq += 1
            print("thread", seq)
        thread = threading.Thread(target=parent_thread)
        thread.start()
        children = []
        for child in range(6):
            pid = os.fork()
            if pid == 0:
                for seq in range(2000):
                    logger.info("<child%d:%d>", child, seq)
                os._exit(0)
            children.append(pid)
            # A writer recreates the file after each move; on a stalled
            # machine that can take longer than the pause below.
            deadline = time.monotonic() + 10
            while not os.path.exists(path) and time.monotonic() < deadline:
                time.sleep(0.001)
            os.rename(path, f"{{path}}.{{child}}")  # logrotate's move
            open(path, "a").close()  # and its create
            time.sleep(0.02)
        for pid in children:
            _, status = os.waitpid(pid, 0)
            assert status == 0, status
        stop.set()
        thread.join()
        """,
        timeout=60,
    )
    thread_count = int(outcome.stdout.split()[1])
    seen: Counter[str] = Counter()
    for path in logs.iterdir():
        for line in path.read_text().splitlines():
            seen[line] += 1
    expected = {f"<thread:{seq}>" for seq in range(thread_count)}
    expected |= {f"<child{child}:{seq}>" for child in range(6) for seq in range(2000)}
    return expected, seen


@pytest.mark.parametrize("mode", ["a", "w"])
def test_forked_children_follow_logrotate(tmp_path: Path, mode: str) -> None:
    """A parent thread and forked children log while the file is moved away
    and recreated again and again: every record is in exactly one file,
    whole, and the children (forked while the thread logs) never hang.  With
    mode "w" a reopen appends: no process truncates another's records."""
    expected, seen = logrotate_scenario(tmp_path, "safelog.WatchedFileHandler", mode)
    assert expected == set(seen)
    assert {} == {line: times for line, times in seen.items() if times > 1}


def test_comparison_stdlib_mode_w_truncates_other_processes(tmp_path: Path) -> None:
    """COMPARISON: the standard handler with mode "w" reopens with "w" after
    each rotation, truncating what the other processes already wrote to the
    new file."""
    # No parent thread: the standard handler's children would hang on its
    # stream's lock, a different defect (test_fork.py).
    expected, seen = logrotate_scenario(
        tmp_path, "logging.handlers.WatchedFileHandler", "w", thread=False
    )
    assert expected - set(seen)
