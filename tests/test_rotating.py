"""safelog.RotatingFileHandler and safelog.TimedRotatingFileHandler: drop-in
for the standard classes, and correct when many processes share one file.

A *threshold crossing* is a record that, when it is about to be appended,
finds the current file not empty and without room: its size plus the
record's length (with the newline) reaches ``maxBytes``.  The standard rule
rolls over exactly there, before writing that record.  So replaying every
record, in file order, through that rule must reproduce exactly the files on
disk; the multi-process tests check this, and that each record is in exactly
one file, whole.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import logging.handlers
import os
import re
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import safelog
from scenario import run_ok

FORMAT = logging.Formatter("%(levelname)s %(name)s %(message)s")


def file_contents(directory: Path) -> dict[str, bytes]:
    """Every log file in ``directory`` (the lock file left out), by name."""
    return {
        path.name: path.read_bytes()
        for path in sorted(directory.iterdir())
        if not path.name.endswith(safelog._rotating.LOCK_FILE_SUFFIX)
    }


def log_through(handler: logging.Handler, messages: list[str]) -> None:
    """Log ``messages`` through ``handler`` alone, then close it."""
    handler.setFormatter(FORMAT)
    logger = logging.Logger("app")
    logger.addHandler(handler)
    for message in messages:
        logger.warning(message)
    handler.close()


def same_as_stdlib(
    tmp_path: Path,
    make: Callable[[type[logging.handlers.RotatingFileHandler], str], logging.Handler],
    messages: list[str],
) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """The files written by the standard class and by safelog's, given the
    same constructor arguments and messages."""
    results = []
    for cls in (logging.handlers.RotatingFileHandler, safelog.RotatingFileHandler):
        directory = tmp_path / cls.__module__
        directory.mkdir()
        log_through(make(cls, str(directory / "app.log")), messages)
        results.append(file_contents(directory))
    return results[0], results[1]


MESSAGES = [f"record {number} " + "é" * (number % 9) for number in range(300)]


def test_same_file_names_and_bytes_as_stdlib(tmp_path: Path) -> None:
    """Size rollovers give the standard file names and bytes, non-ASCII text
    included (length counted in characters, as the standard handler does)."""
    expected, actual = same_as_stdlib(
        tmp_path,
        lambda cls, name: cls(name, maxBytes=700, backupCount=4, encoding="utf-8"),
        MESSAGES,
    )
    assert ["app.log", "app.log.1", "app.log.2", "app.log.3", "app.log.4"] == list(
        actual
    )
    assert expected == actual


def test_namer_and_rotator_as_stdlib(tmp_path: Path) -> None:
    """namer and rotator are called as the standard handler calls them."""

    def make(cls: type[logging.handlers.RotatingFileHandler], name: str) -> Any:
        handler = cls(name, maxBytes=500, backupCount=3)
        handler.namer = lambda default: default.replace(".log.", "-") + ".txt"

        def rotator(source: str, dest: str) -> None:
            with open(source, "rb") as old, open(dest, "wb") as new:
                new.write(old.read().upper())
            os.remove(source)

        handler.rotator = rotator
        return handler

    expected, actual = same_as_stdlib(tmp_path, make, MESSAGES[:100])
    assert ["app-1.txt", "app-2.txt", "app-3.txt", "app.log"] == list(actual)
    assert expected == actual


# Backups an earlier run left: gaps (no .2, .4), the top number (.6), one
# beyond backupCount (.9), and names that are not backups (.02, .x, .1.gz).
LEFT_BEHIND = ["1", "3", "5", "6", "9", "02", "x", "1.gz"]


def seed_backups(name: str, suffixes: list[str]) -> None:
    for suffix in suffixes:
        path = Path(f"{name}.{suffix}")
        path.parent.mkdir(exist_ok=True)
        path.write_text(f"left behind as {path.name}\n")


def tree_contents(directory: Path) -> dict[str, bytes]:
    """Every log file under ``directory``, sub-directories included (the
    lock file left out), by relative path."""
    return {
        path.relative_to(directory).as_posix(): path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file() and not path.name.endswith(safelog._rotating.LOCK_FILE_SUFFIX)
    }


def test_backups_with_gaps_as_stdlib(tmp_path: Path) -> None:
    """Backups left with gaps in their numbers move up by one each, gaps
    kept, the top one overwritten only by its neighbour, others left alone:
    as the standard handler, which looks at every number."""

    def make(cls: type[logging.handlers.RotatingFileHandler], name: str) -> Any:
        seed_backups(name, LEFT_BEHIND)
        return cls(name, maxBytes=300, backupCount=6)

    expected, actual = same_as_stdlib(tmp_path, make, MESSAGES[:40])
    assert "left behind as app.log.9\n" == actual["app.log.9"].decode()
    assert "left behind as app.log.02\n" == actual["app.log.02"].decode()
    assert expected == actual


def in_subdirectory(default_name: str) -> str:
    """``dir/app.log.3`` becomes ``dir/old/app-3.txt``."""
    directory, name = os.path.split(default_name)
    return os.path.join(directory, "old", name.replace(".log.", "-") + ".txt")


class SubdirectoryNames(logging.handlers.RotatingFileHandler):
    """Backups named by overriding rotation_filename, not by a namer."""

    def rotation_filename(self, default_name: str) -> str:
        return in_subdirectory(default_name)


@pytest.mark.parametrize("hook", ["namer", "rotation_filename"])
def test_custom_names_with_gaps_as_stdlib(tmp_path: Path, hook: str) -> None:
    """With a namer, or a subclass's rotation_filename, putting backups in
    another directory, backups left with gaps are moved as the standard
    handler moves them."""

    def make(cls: type[logging.handlers.RotatingFileHandler], name: str) -> Any:
        if hook == "rotation_filename":
            cls = type("Named", (SubdirectoryNames, cls), {})
        handler = cls(name, maxBytes=300, backupCount=6)
        if hook == "namer":
            handler.namer = in_subdirectory
        for suffix in LEFT_BEHIND:
            path = Path(handler.rotation_filename(f"{name}.{suffix}"))
            path.parent.mkdir(exist_ok=True)
            path.write_text(f"left behind as {path.name}\n")
        return handler

    results = []
    for cls in (logging.handlers.RotatingFileHandler, safelog.RotatingFileHandler):
        directory = tmp_path / cls.__module__
        directory.mkdir()
        log_through(make(cls, str(directory / "app.log")), MESSAGES[:40])
        results.append(tree_contents(directory))
    expected, actual = results
    assert "left behind as app-9.txt\n" == actual["old/app-9.txt"].decode()
    assert {"old/app-1.txt", "old/app-2.txt", "old/app-6.txt"} < set(actual)
    assert expected == actual


def test_rollover_cost_does_not_grow_with_backup_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hazard: the standard rollover asks os.path.exists for every number
    below backupCount (4,000 calls with backupCount=2000), all under the
    exclusive lock, so every process waits.  safelog's looks only at the
    backups that exist."""
    handler = safelog.RotatingFileHandler(
        tmp_path / "app.log", maxBytes=10_000, backupCount=2000
    )
    seed_backups(str(tmp_path / "app.log"), ["1", "2", "700"])
    handler.emit(logging.makeLogRecord({"msg": "before"}))
    looked_at: list[str] = []
    exists = os.path.exists

    def counting_exists(path: Any) -> bool:
        looked_at.append(os.fspath(path))
        return exists(path)

    monkeypatch.setattr(os.path, "exists", counting_exists)
    handler.doRollover()
    handler.close()
    # Two names per existing backup, .1 again, and the log in rotate().
    assert 8 == len(looked_at)
    expected = ["app.log", "app.log.1", "app.log.2", "app.log.3", "app.log.701"]
    assert expected == list(file_contents(tmp_path))


def test_a_directory_that_cannot_be_listed_falls_back_to_every_number(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the log's directory can be searched but not listed, rollover
    looks at every number, as the standard handler does."""
    seed_backups(str(tmp_path / "app.log"), ["1", "3"])

    def unlistable(path: Any) -> list[str]:
        raise PermissionError(13, "Permission denied", path)

    handler = safelog.RotatingFileHandler(
        tmp_path / "app.log", maxBytes=10_000, backupCount=4
    )
    handler.emit(logging.makeLogRecord({"msg": "current"}))
    monkeypatch.setattr(os, "listdir", unlistable)
    handler.doRollover()
    handler.close()
    monkeypatch.undo()
    expected = {
        "app.log": b"",
        "app.log.1": b"current\n",
        "app.log.2": b"left behind as app.log.1\n",
        "app.log.4": b"left behind as app.log.3\n",
    }
    assert expected == file_contents(tmp_path)


@pytest.mark.parametrize(
    "options",
    [
        {"maxBytes": 600, "backupCount": 0},
        {"maxBytes": 0, "backupCount": 3},
        {"maxBytes": 0, "backupCount": 3, "mode": "w"},
        {"maxBytes": 600, "backupCount": 2, "delay": True},
        {"maxBytes": 600, "backupCount": 2, "mode": "w"},
    ],
    ids=["no-backups", "no-limit", "no-limit-truncate", "delay", "w-forced-to-a"],
)
def test_options_as_stdlib(tmp_path: Path, options: dict[str, Any]) -> None:
    """backupCount=0, maxBytes=0, mode and delay behave as in the standard
    handler, on a file that already holds records."""
    for cls in ("logging", "safelog"):
        (tmp_path / cls).mkdir()
        (tmp_path / cls / "app.log").write_text("from an earlier run\n" * 10)
    expected, actual = same_as_stdlib(
        tmp_path, lambda cls, name: cls(name, **options), MESSAGES[:80]
    )
    assert expected == actual


def test_delay_creates_no_file_before_the_first_record(tmp_path: Path) -> None:
    """With delay=True, no log file exists until the first record."""
    handler = safelog.RotatingFileHandler(
        tmp_path / "app.log", maxBytes=100, delay=True
    )
    assert [] == [path.name for path in tmp_path.iterdir()]
    log_through(handler, ["one"])
    assert b"WARNING app one\n" == (tmp_path / "app.log").read_bytes()


def test_manual_do_rollover_as_stdlib(tmp_path: Path) -> None:
    """Calling doRollover() directly rolls over as the standard handler."""

    def make(cls: type[logging.handlers.RotatingFileHandler], name: str) -> Any:
        handler = cls(name, maxBytes=10_000, backupCount=2)
        handler.setFormatter(FORMAT)
        handler.emit(logging.makeLogRecord({"msg": "before", "name": "app"}))
        handler.doRollover()
        return handler

    expected, actual = same_as_stdlib(tmp_path, make, ["after"])
    assert {"app.log": b"WARNING app after\n"} == {
        name: data for name, data in actual.items() if name == "app.log"
    }
    assert expected == actual


def test_should_rollover_as_stdlib(tmp_path: Path) -> None:
    """shouldRollover() answers as the standard handler for the same file."""
    record = logging.makeLogRecord({"msg": "x" * 40})
    answers = []
    for cls in (logging.handlers.RotatingFileHandler, safelog.RotatingFileHandler):
        path = tmp_path / f"{cls.__module__}.log"
        path.write_text("y" * 50)
        handler = cls(path, maxBytes=91)
        answers.append([bool(handler.shouldRollover(record))])
        handler.maxBytes = 92
        answers[-1].append(bool(handler.shouldRollover(record)))
        handler.close()
    assert [True, False] == answers[1]
    assert answers[0] == answers[1]


def test_an_empty_file_never_rolls_over(tmp_path: Path) -> None:
    """A record longer than maxBytes goes to the empty file, as in Python 3.13
    (gh-116263): no empty backup is made."""
    log_through(
        safelog.RotatingFileHandler(tmp_path / "app.log", maxBytes=10, backupCount=3),
        ["a record longer than maxBytes", "another"],
    )
    expected = {
        "app.log": b"WARNING app another\n",
        "app.log.1": b"WARNING app a record longer than maxBytes\n",
    }
    assert expected == file_contents(tmp_path)


def test_a_non_regular_file_never_rolls_over(tmp_path: Path) -> None:
    """A handler on /dev/null never tries to rename it (bpo-45401)."""
    handler = safelog.RotatingFileHandler(os.devnull, maxBytes=1, backupCount=1)
    log_through(handler, ["one", "two"])
    assert os.path.exists(os.devnull)


def test_a_writer_follows_another_handlers_rollover(tmp_path: Path) -> None:
    """After another handler on the same file (as another process would)
    rolled over, a writer's next record goes to the new file."""
    first = safelog.RotatingFileHandler(
        tmp_path / "app.log", maxBytes=60, backupCount=5
    )
    second = safelog.RotatingFileHandler(
        tmp_path / "app.log", maxBytes=60, backupCount=5
    )
    for handler in (first, second):
        handler.setFormatter(logging.Formatter("%(message)s"))
    first.emit(logging.makeLogRecord({"msg": "a" * 30}))
    first.emit(logging.makeLogRecord({"msg": "b" * 30}))  # rolls over
    second.emit(logging.makeLogRecord({"msg": "c" * 10}))
    first.close()
    second.close()
    expected = {
        "app.log": ("b" * 30 + "\n" + "c" * 10 + "\n").encode(),
        "app.log.1": ("a" * 30 + "\n").encode(),
    }
    assert expected == file_contents(tmp_path)


def test_a_writer_recreates_a_deleted_file(tmp_path: Path) -> None:
    """When the log file is deleted, the next record creates it again."""
    handler = safelog.RotatingFileHandler(tmp_path / "app.log", maxBytes=1000)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.emit(logging.makeLogRecord({"msg": "one"}))
    os.remove(tmp_path / "app.log")
    handler.emit(logging.makeLogRecord({"msg": "two"}))
    handler.close()
    assert {"app.log": b"two\n"} == file_contents(tmp_path)


def test_lock_file_beside_the_log(tmp_path: Path) -> None:
    """The inter-process lock is taken on <log>.lock in the log's directory."""
    log_through(safelog.RotatingFileHandler(tmp_path / "app.log", maxBytes=100), ["x"])
    assert ["app.log", "app.log.lock"] == sorted(p.name for p in tmp_path.iterdir())


def test_an_inherited_lock_descriptor_is_no_lock(tmp_path: Path) -> None:
    """Hazard: a forked child that locked through the descriptor it inherited
    would "get" the lock its parent holds; safelog's child opens its own
    descriptor, and waits."""
    run_ok(
        f"""
        import fcntl, logging, os, safelog
        handler = safelog.RotatingFileHandler({str(tmp_path / "app.log")!r},
                                              maxBytes=1000)
        handler.emit(logging.makeLogRecord({{"msg": "opens the lock file"}}))
        # A second descriptor on the parent's open file description: what a
        # child that kept its inherited descriptor would lock through.
        inherited = os.dup(handler._file_lock._descriptor())
        fcntl.flock(inherited, fcntl.LOCK_EX)  # the parent holds the lock
        pid = os.fork()
        if pid == 0:
            try:
                fcntl.flock(inherited, fcntl.LOCK_EX | fcntl.LOCK_NB)
                shared = True  # no exclusion at all
            except BlockingIOError:
                shared = False
            try:
                fcntl.flock(handler._file_lock._descriptor(),
                            fcntl.LOCK_EX | fcntl.LOCK_NB)
                excluded = False
            except BlockingIOError:
                excluded = True
            os._exit(0 if (shared, excluded) == (True, True) else 1)
        _, status = os.waitpid(pid, 0)
        assert 0 == status, status
        """,
        timeout=30,
    )


# --- many processes, one file ---------------------------------------------------

WRITER = r"""
import logging, logging.handlers, os, select, subprocess, sys, time
import safelog

def record(writer, seq):
    # Lengths vary with seq, so a torn record can be told from a whole one.
    return f"<{writer:02d}:{seq:07d}:{'x' * (seq * 7 % 23)}>"

def make_handler(kind, path, max_bytes, backups):
    cls = {"safelog": safelog.RotatingFileHandler,
           "stdlib": logging.handlers.RotatingFileHandler}[kind]
    handler = cls(path, maxBytes=max_bytes, backupCount=backups)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("torture")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    return logger

def write(logger, writer, first, count):
    for seq in range(first, count):
        logger.info("%s", record(writer, seq))

role, kind, path = sys.argv[1:4]
max_bytes, backups, count = map(int, sys.argv[4:7])
if role == "worker":  # an independent process with the same configuration
    writer = int(sys.argv[7])
    logger = make_handler(kind, path, max_bytes, backups)
    print("ready", flush=True)
    sys.stdin.readline()
    write(logger, writer, 0, count)
    sys.exit(0)

forked, independent = map(int, sys.argv[7:9])
logger = make_handler(kind, path, max_bytes, backups)
write(logger, 0, 0, 1)  # opens the file (and the lock file) before forking
workers = [
    subprocess.Popen([sys.executable, sys.argv[0], "worker", kind, path,
                      *sys.argv[4:7], str(1 + forked + n)],
                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    for n in range(independent)
]
for worker in workers:
    assert worker.stdout.readline() == "ready\n"
go_read, go_write = os.pipe()
children = []
for n in range(forked):
    pid = os.fork()
    if pid == 0:
        os.close(go_write)
        os.read(go_read, 1)  # returns at end of file: go
        write(logger, 1 + n, 0, count)
        os._exit(0)
    children.append(pid)
os.close(go_write)
for worker in workers:
    worker.stdin.write("go\n")
    worker.stdin.flush()
start = time.perf_counter()
write(logger, 0, 1, count)
for pid in children:
    _, status = os.waitpid(pid, 0)
    assert status == 0, status
for worker in workers:
    assert worker.wait() == 0
print(f"seconds {time.perf_counter() - start:.2f}")
"""

RECORD = re.compile(rb"<(\d\d):(\d{7}):(x*)>\n")


@dataclasses.dataclass
class Tally:
    """What a multi-process run left on disk, against what was logged."""

    lost: int
    duplicated: int
    torn: int
    rollovers: int
    crossings: int
    misplaced_boundaries: int
    max_file_size: int

    def correct(self) -> dict[str, int]:
        """The fields that must all be 0 when rotation is correct, with the
        difference between rollovers and crossings."""
        return {
            "lost": self.lost,
            "duplicated": self.duplicated,
            "torn": self.torn,
            "rollovers - crossings": self.rollovers - self.crossings,
            "misplaced boundaries": self.misplaced_boundaries,
        }


def tally(directory: Path, writers: int, count: int, max_bytes: int) -> Tally:
    """Count lost, duplicated and torn records, rollovers (backups on disk),
    and threshold crossings found by replaying the records in file order."""
    backups = sorted(
        (
            int(path.name.rsplit(".", 1)[1])
            for path in directory.glob("app.log.*")
            if path.name.rsplit(".", 1)[1].isdigit()
        ),
        reverse=True,
    )
    files = [directory / f"app.log.{number}" for number in backups]
    files.append(directory / "app.log")
    seen: Counter[tuple[int, int]] = Counter()
    torn = crossings = misplaced = size = max_size = 0
    for position, path in enumerate(files):
        data = path.read_bytes() if path.exists() else b""
        max_size = max(max_size, len(data))
        lines = data.splitlines(keepends=True)
        for number, line in enumerate(lines):
            match = RECORD.fullmatch(line)
            whole = match and len(match[3]) == int(match[2]) * 7 % 23
            if not whole:
                torn += 1
            else:
                seen[int(match[1]), int(match[2])] += 1
            # The standard rule, replayed: a crossing starts a new file.
            crossing = size > 0 and size + len(line) >= max_bytes
            crossings += crossing
            if crossing != (number == 0 and position > 0):
                misplaced += 1
            size = len(line) if crossing else size + len(line)
    expected = {(writer, seq) for writer in range(writers) for seq in range(count)}
    return Tally(
        lost=len(expected - set(seen)),
        duplicated=sum(times - 1 for times in seen.values()),
        torn=torn,
        rollovers=len(backups),
        crossings=crossings,
        misplaced_boundaries=misplaced,
        max_file_size=max_size,
    )


def run_writers(
    tmp_path: Path,
    kind: str,
    *,
    forked: int,
    independent: int,
    records: int,
    max_bytes: int,
    timeout: float,
) -> Tally:
    """Run 1 + forked + independent processes logging ``records`` records in
    all to one file through ``kind``'s RotatingFileHandler; tally the files."""
    writers = 1 + forked + independent
    count = records // writers
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    logs = tmp_path / kind
    logs.mkdir()
    # Enough backups to keep every file: a deleted backup would hide losses.
    backups = 4 * records * 40 // max_bytes + 10
    argv = [str(script), "main", kind, str(logs / "app.log")]
    argv += [str(n) for n in (max_bytes, backups, count, forked, independent)]
    outcome = run_ok(
        f"""
        import runpy, sys
        sys.argv = {argv!r}
        runpy.run_path(sys.argv[0], run_name="__main__")
        """,
        timeout=timeout,
    )
    result = tally(logs, writers, count, max_bytes)
    print(f"{kind}: {outcome.stdout.strip()} {result}", file=sys.stderr)
    assert result.rollovers < backups
    return result


NO_ERRORS = {
    "lost": 0,
    "duplicated": 0,
    "torn": 0,
    "rollovers - crossings": 0,
    "misplaced boundaries": 0,
}


def test_many_processes_roll_over_exactly_at_each_crossing(tmp_path: Path) -> None:
    """4 processes (the parent, a forked child, 2 independent ones), 20,000
    records, a 4 KiB maxBytes: nothing lost, doubled or torn, and one rollover
    per threshold crossing."""
    result = run_writers(
        tmp_path,
        "safelog",
        forked=1,
        independent=2,
        records=20_000,
        max_bytes=4096,
        timeout=60,
    )
    assert NO_ERRORS == result.correct()
    assert result.rollovers > 100
    assert result.max_file_size < 4096


def test_stdlib_handler_loses_records_across_processes(tmp_path: Path) -> None:
    """The defect safelog fixes: the same run through
    logging.handlers.RotatingFileHandler loses records or rolls over at the
    wrong places."""
    result = run_writers(
        tmp_path,
        "stdlib",
        forked=1,
        independent=2,
        records=20_000,
        max_bytes=4096,
        timeout=60,
    )
    assert NO_ERRORS != result.correct()


@pytest.mark.torture
def test_torture_8_processes_200000_records(tmp_path: Path) -> None:
    """8 processes (the parent, 3 forked children, 4 independent ones),
    200,000 records, an 8 KiB maxBytes: nothing lost, doubled or torn, and
    one rollover per threshold crossing."""
    result = run_writers(
        tmp_path,
        "safelog",
        forked=3,
        independent=4,
        records=200_000,
        max_bytes=8192,
        timeout=600,
    )
    assert NO_ERRORS == result.correct()
    assert result.max_file_size < 8192


@pytest.mark.torture
def test_torture_stdlib_comparison(tmp_path: Path) -> None:
    """The defect safelog fixes, at torture scale: the standard handler
    loses records or rolls over at the wrong places."""
    result = run_writers(
        tmp_path,
        "stdlib",
        forked=3,
        independent=4,
        records=200_000,
        max_bytes=8192,
        timeout=600,
    )
    assert NO_ERRORS != result.correct()


# --- timed rotation --------------------------------------------------------------


def wait_for_mid_second() -> None:
    """Sleep until 0.3 s into a second, so that two handlers doing the same
    thing one after the other see the same whole second."""
    time.sleep((1.3 - time.time() % 1.0) % 1.0)


def test_timed_same_file_names_and_bytes_as_stdlib(tmp_path: Path) -> None:
    """when='S': the same backups (names, old ones deleted) and bytes as the
    standard handler, with and without a namer; about 4 s of real time."""
    handlers = []
    for cls in (
        logging.handlers.TimedRotatingFileHandler,
        safelog.TimedRotatingFileHandler,
    ):
        for named in (False, True):
            directory = tmp_path / f"{cls.__module__}-{named}"
            directory.mkdir()
            handlers.append((directory, cls, named))
    wait_for_mid_second()
    logger = logging.Logger("app")
    for directory, cls, named in handlers:
        handler = cls(directory / "app.log", when="S", backupCount=2)
        if named:
            handler.namer = lambda default: default + ".txt"
        handler.setFormatter(FORMAT)
        logger.addHandler(handler)
    for second in range(4):
        wait_for_mid_second()
        for number in range(3):
            logger.warning("second %d record %d", second, number)
    for handler in logger.handlers:
        handler.close()
    results = [file_contents(directory) for directory, _, _ in handlers]
    assert 3 == len(results[2])  # two backups and the current file
    assert (results[0], results[1]) == (results[2], results[3])


TIMED_WRITER = r"""
import logging, os, sys, time
import safelog

path, deadline, writer = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
handler = safelog.TimedRotatingFileHandler(path, when="S", interval=2,
                                           backupCount=100)
handler.setFormatter(logging.Formatter("%(created).6f %(message)s"))
logger = logging.getLogger("timed")
logger.setLevel(logging.INFO)
logger.addHandler(handler)
seq = 0
while time.time() < deadline:
    logger.info("<%02d:%07d>", writer, seq)
    seq += 1
    time.sleep(0.002)
# One write: print() writes the number and its newline separately when stdout
# is unbuffered, so a parent and child printing at once could fuse two counts.
os.write(1, b"%d\n" % seq)
"""


def test_timed_processes_share_one_schedule(tmp_path: Path) -> None:
    """A process started a second later, whose own schedule would be a
    second behind (within the 2 s interval), rolls over at the time the
    first process set, after that process and its forked child went quiet;
    nothing lost or doubled; about 5 s."""
    script = tmp_path / "timed_writer.py"
    script.write_text(TIMED_WRITER)
    logs = tmp_path / "logs"
    logs.mkdir()
    outcome = run_ok(
        f"""
        import os, subprocess, sys, time
        time.sleep((1.3 - time.time() % 1.0) % 1.0)
        start = time.time()
        script, path = {str(script)!r}, {str(logs / "app.log")!r}
        child = os.fork()
        writer = "1" if child == 0 else "0"
        sys.argv = [script, path, str(start + 1.5), writer]
        if child == 0:
            exec(open(script).read())
            os._exit(0)
        # Started 1 s later: its own schedule would be 1 s behind ours.
        time.sleep(1.0)
        independent = subprocess.Popen(
            [sys.executable, script, path, str(start + 4.7), "2"],
            stdout=subprocess.PIPE, text=True)
        exec(open(script).read())
        _, status = os.waitpid(child, 0)
        assert status == 0, status
        print(independent.communicate()[0].strip())
        assert independent.returncode == 0
        """,
        timeout=60,
    )
    logged = sum(int(count) for count in outcome.stdout.split())
    starts, seen, late, first_created = read_timed_backups(logs)
    # The first interval starts when the first process created its handler.
    assert [first_created, first_created + 2] == starts
    assert [] == late  # no record written after its file's interval
    assert {} == {record: times for record, times in seen.items() if times > 1}
    assert logged == len(seen)


def read_timed_backups(
    logs: Path,
) -> tuple[list[int], Counter[str], list[tuple[str, str]], int | None]:
    """The start of each backup's interval (from its name), how often each
    record was written, records written after their file's interval, and
    when the first record was created."""
    backups = sorted(
        path for path in logs.glob("app.log.*") if not path.name.endswith(".lock")
    )
    seen: Counter[str] = Counter()
    first_created = None
    starts: list[int] = []
    late = []
    for path in [*backups, logs / "app.log"]:
        if path.name != "app.log":
            start = time.strptime(path.name[len("app.log.") :], "%Y-%m-%d_%H-%M-%S")
            starts.append(int(time.mktime(start)))
        for line in path.read_text().splitlines():
            created, record = line.split()
            seen[record] += 1
            if first_created is None:
                first_created = int(float(created))
            if path.name != "app.log" and int(float(created)) >= starts[-1] + 2:
                late.append((path.name, line))
    return starts, seen, late, first_created


@pytest.mark.parametrize("stored", ["later", "earlier"])
def test_timed_first_rollover_follows_the_modification_time(
    tmp_path: Path, stored: str
) -> None:
    """A handler made on an existing file rolls over first when the standard
    handler would (from the file's modification time), whatever schedule an
    earlier run stored for that file: not later (a restart past the due
    time rolls over at its first record), not earlier (a file touched since
    is not due just because the old schedule is); about 2 s."""
    when = "H" if stored == "later" else "S"
    classes = {
        "stdlib": logging.handlers.TimedRotatingFileHandler,
        "safelog": safelog.TimedRotatingFileHandler,
    }
    for name in classes:
        (tmp_path / name).mkdir()
        earlier = safelog.TimedRotatingFileHandler(
            tmp_path / name / "app.log", when=when, interval=2
        )
        earlier.emit(logging.makeLogRecord({"msg": "earlier run"}))  # stores it
        earlier.close()
    if stored == "earlier":
        time.sleep(2.2)  # the earlier run's schedule (2 s) passes
    results = {}
    for name, cls in classes.items():
        path = tmp_path / name / "app.log"
        if stored == "later":
            # The earlier run's schedule is due in two hours; the file was
            # last written three hours ago: a restart past the due time.
            old = time.time() - 3 * 3600
            os.utime(path, (old, old))
        else:
            os.utime(path)  # written to now: the standard rule counts from now
        handler = cls(path, when=when, interval=2)
        handler.emit(logging.makeLogRecord({"msg": "after restart"}))
        handler.close()
        files = [p for p in (tmp_path / name).iterdir() if p.suffix != ".lock"]
        results[name] = (len(files), path.read_text().splitlines())
    assert (2 if stored == "later" else 1) == results["stdlib"][0]
    assert results["stdlib"] == results["safelog"]


def test_should_rollover_with_max_bytes_zero_leaves_the_record_alone(
    tmp_path: Path,
) -> None:
    """RotatingFileHandler(maxBytes=0).shouldRollover() is False without
    formatting the record (it need not even be a LogRecord), as the standard
    handler's."""
    for cls in (logging.handlers.RotatingFileHandler, safelog.RotatingFileHandler):
        handler = cls(tmp_path / f"{cls.__module__}.log", maxBytes=0)
        assert handler.shouldRollover(object()) is False  # type: ignore[arg-type]
        handler.close()


@pytest.mark.parametrize(
    "base", [safelog.RotatingFileHandler, safelog.TimedRotatingFileHandler]
)
def test_subclass_should_rollover_and_do_rollover_are_asked(
    tmp_path: Path, base: type[logging.Handler]
) -> None:
    """A subclass's shouldRollover() decides, and its doRollover() rolls
    over, as with the standard classes, under the shared lock."""
    calls: list[str] = []

    class Every3(base):  # type: ignore[valid-type,misc]
        def shouldRollover(self, record: logging.LogRecord) -> bool:
            calls.append("should")
            return record.getMessage().endswith("3")

        def doRollover(self) -> None:
            calls.append("do")
            super().doRollover()

    path = tmp_path / "app.log"
    handler = Every3(path, backupCount=5)
    for number in range(1, 7):
        handler.emit(logging.makeLogRecord({"msg": f"record {number}"}))
    handler.close()
    assert 6 == calls.count("should")
    assert 1 == calls.count("do")
    backups = sorted(p for p in tmp_path.iterdir() if p.name.startswith("app.log."))
    backups = [p for p in backups if not p.name.endswith(".lock")]
    assert 1 == len(backups)
    assert ["record 1", "record 2"] == backups[0].read_text().splitlines()
    assert [f"record {n}" for n in range(3, 7)] == path.read_text().splitlines()


# -- doRollover() from another thread ---------------------------------------------


def test_do_rollover_from_another_thread_waits_for_the_record(tmp_path: Path) -> None:
    """An application thread calling doRollover() ("rotate now") while
    another thread is inside emit(), rolling over itself, waits for that
    thread to finish: it never rotates files under it (which lost records
    and wrote to closed descriptors).  Every record is in exactly one file."""
    outcome = run_ok(
        f"""
        import json, logging, os, threading
        import safelog
        path = {str(tmp_path / "app.log")!r}
        handler = safelog.RotatingFileHandler(path, maxBytes=60, backupCount=10)
        handler.setFormatter(logging.Formatter("%(message)s"))
        in_emit, rotate_now_done = threading.Event(), threading.Event()
        overlapped = []
        def rotator(source, dest):
            os.rename(source, dest)
            if threading.current_thread() is threading.main_thread():
                if not in_emit.is_set():
                    # Inside emit's rollover: let the other thread try now.
                    in_emit.set()
                    overlapped.append(rotate_now_done.wait(0.5))
        handler.rotator = rotator
        log = logging.getLogger("rotate-now")
        log.propagate = False
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        errors = []
        def rotate_now():
            in_emit.wait(30)
            try:
                handler.doRollover()
            except Exception as error:
                errors.append(repr(error))
            rotate_now_done.set()
        thread = threading.Thread(target=rotate_now)
        thread.start()
        for i in range(6):
            log.info("record %d %s", i, "x" * 20)
        thread.join(30)
        handler.close()
        lines = []
        for name in sorted(os.listdir({str(tmp_path)!r})):
            if name.startswith("app.log") and not name.endswith(".lock"):
                with open(os.path.join({str(tmp_path)!r}, name)) as f:
                    lines += f.read().splitlines()
        print(json.dumps({{"overlapped": overlapped, "lines": sorted(lines),
                           "errors": errors}}))
        """,
        timeout=60,
    )
    summary = json.loads(outcome.stdout)
    assert ([False], []) == (summary["overlapped"], summary["errors"])
    assert sorted(f"record {i} {'x' * 20}" for i in range(6)) == summary["lines"]
