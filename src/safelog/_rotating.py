"""Rotating file handlers that any number of processes may share.

``logging.handlers.RotatingFileHandler`` and ``TimedRotatingFileHandler``
assume one writer per file: when two processes roll over, each renames files
the other still writes to, and records are lost or land far from where the
schedule puts them.  The handlers here keep the standard ones' file names,
schedule, ``namer``/``rotator`` hooks and ``backupCount``, and coordinate
every process that writes the same file (forked children and independent
processes alike) through an ``flock`` on a lock file beside the log,
``<log>.lock``:

* a rollover is decided and done only under the exclusive lock, after
  checking the file now at the path, so one threshold crossing or one due
  time gives exactly one rollover, whoever notices it first;
* before each write, a writer compares the inode at the path with the one it
  holds open and reopens when another process rolled over, so no record goes
  to a rotated-away file;
* each record is written in one ``os.write`` on an ``O_APPEND`` descriptor
  while the writer holds the lock (shared for the timed handler, exclusive
  for the size one, whose check and write must not be separated), so it
  lands whole, once, in the file its rollover check was made against.

Each process opens the lock file itself: an ``flock`` belongs to an open file
description, which a forked child shares with its parent, so an inherited
descriptor would let both hold "the" lock at once.  Where ``fcntl`` does not
exist (Windows) there is no lock, and the handlers have the standard ones'
single-process behaviour.
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import os
import stat
import sys
import time
import unicodedata
from typing import Any

try:
    import fcntl
except ImportError:  # Windows: one process per file, as with the stdlib
    fcntl = None  # type: ignore[assignment]

from ._handlers import FileHandler, text_encoding

__all__ = ["LOCK_FILE_SUFFIX", "RotatingFileHandler", "TimedRotatingFileHandler"]

LOCK_FILE_SUFFIX = ".lock"
"""The lock file of ``app.log`` is ``app.log.lock``, in the same directory."""

# Room for the schedule note (two integers, a time stamp and a short key).
_NOTE_SIZE = 512


class InterProcessLock:
    """An ``flock`` on one lock file, opened by, and only used in, the
    process that holds this object.  Not thread-safe: the handler lock
    serialises its users."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.held = False
        self.exclusive = False
        self._fd: int | None = None
        self._owner_pid = 0

    def acquire(self, *, exclusive: bool) -> None:
        """Take the lock, or convert the one held.  flock converts by
        unlocking first, so after a conversion anything may have changed."""
        if fcntl is not None:
            fcntl.flock(
                self._descriptor(), fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
            )
        self.held, self.exclusive = True, exclusive

    def release(self) -> None:
        if self.held and self._fd is not None and fcntl is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self.held = self.exclusive = False

    def read_note(self) -> str:
        """The text stored in the lock file (read under the lock)."""
        if fcntl is None:
            return ""
        return os.pread(self._descriptor(), _NOTE_SIZE, 0).decode("ascii", "replace")

    def write_note(self, note: str) -> None:
        """Replace the text stored in the lock file (under the exclusive
        lock)."""
        if fcntl is None:
            return
        data = note.encode("ascii")
        if len(data) > _NOTE_SIZE:
            raise ValueError(f"note must be at most {_NOTE_SIZE} bytes, got {note!r}")
        fd = self._descriptor()
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))

    def _descriptor(self) -> int:
        if self._fd is None or self._owner_pid != os.getpid():
            # A descriptor from the parent (a fork that bypassed the at-fork
            # hooks) is dropped, never unlocked: unlocking it would release
            # the parent's lock.
            self.forget_inherited()
            # os.open descriptors are not inherited across exec.
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            self._owner_pid = os.getpid()
        return self._fd

    def forget_inherited(self) -> None:
        """In a forked child: close the parent's descriptor without
        unlocking it (the parent may hold the lock through it)."""
        fd, self._fd = self._fd, None
        self.held = self.exclusive = False
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def close(self) -> None:
        if self._owner_pid != os.getpid():
            self.forget_inherited()
            return
        self.release()
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


class SharedRotation(FileHandler):
    """What both rotating handlers add to ``safelog.FileHandler``: the lock
    file, following the file at the path, and a locked ``doRollover``."""

    baseFilename: str
    terminator: str
    _file_lock: InterProcessLock
    # (st_dev, st_ino) of the file that self.stream writes to.
    _open_file: tuple[int, int] | None = None

    @classmethod
    def _safelog_state(cls, handler: Any) -> dict[str, Any]:
        state = super()._safelog_state(handler)
        state["_file_lock"] = InterProcessLock(handler.baseFilename + LOCK_FILE_SUFFIX)
        stream = handler.stream
        state["_open_file"] = None if stream is None else _open_file_identity(stream)
        return state

    def _open(self) -> Any:
        stream = super()._open()
        opened = os.fstat(stream.fileno())
        self._open_file = (opened.st_dev, opened.st_ino)
        return stream

    def _follow_path(self) -> os.stat_result:
        """Make ``self.stream`` write to the file now at the path, opening
        it if needed, and return that file's status."""
        if fcntl is not None and self.stream is not None:
            try:
                at_path: os.stat_result | None = os.stat(self.baseFilename)
            except FileNotFoundError:
                at_path = None
            if at_path is not None and self._open_file == (
                at_path.st_dev,
                at_path.st_ino,
            ):
                return at_path
            # Another process rolled over, or the file was moved or deleted.
            self._close_stream()
        if self.stream is None:
            self.stream = self._open()
        return os.fstat(self.stream.fileno())

    def _close_stream(self) -> None:
        stream, self.stream = self.stream, None
        self._open_file = None
        if stream is not None:
            stream.close()

    def _write(self, text: str) -> None:
        # One os.write per record: text and terminator together.
        if self.stream is None:
            self.stream = self._open()
        self.stream.write(text + self.terminator)

    def emit(self, record: logging.LogRecord) -> None:
        """Write the record, rolling over first if it is due (see the
        class).  Never raises: errors go to ``handleError``, as in the
        standard handlers."""
        try:
            self._emit_text(record, self.format(record))
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)

    def _emit_text(self, record: logging.LogRecord, text: str) -> None:
        raise NotImplementedError

    def _rule_overridden(self, base: type) -> bool:
        """Whether a subclass decides when to roll over (its own
        ``shouldRollover``), which ``emit`` then asks, as the standard one
        does."""
        return type(self).shouldRollover is not base.shouldRollover  # type: ignore[attr-defined]

    def doRollover(self) -> None:
        """Roll over now, as the standard handler does, under the handler
        lock and the exclusive inter-process lock.  Safe from any thread:
        one that calls it while another writes waits for that record."""
        assert self.lock is not None
        with self.lock:  # an RLock: emit, which holds it, calls this too
            # Only the thread holding the handler lock uses the file lock, so
            # holding it now means this thread is in emit and took it there.
            if self._file_lock.exclusive:
                self._roll_over()
                return
            self._file_lock.acquire(exclusive=True)
            try:
                self._roll_over()
            finally:
                self._file_lock.release()

    def _roll_over(self) -> None:
        super().doRollover()  # type: ignore[misc]

    def _start_afresh_in_child(self) -> None:
        super()._start_afresh_in_child()
        self._file_lock.forget_inherited()

    def close(self) -> None:
        """Close the file and this process's lock file descriptor, under the
        handler lock (never under a thread that is writing a record)."""
        assert self.lock is not None
        with self.lock:
            try:
                super().close()
            finally:
                lock = getattr(self, "_file_lock", None)
                if lock is not None:
                    lock.close()


def _open_file_identity(stream: Any) -> tuple[int, int] | None:
    """(st_dev, st_ino) of the file ``stream`` writes to; None if it has no
    descriptor to ask (a converted handler's stream may be any object)."""
    try:
        opened = os.fstat(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return None
    return opened.st_dev, opened.st_ino


def _is_regular(status: os.stat_result) -> bool:
    return stat.S_ISREG(status.st_mode)


def _same_name_key(name: str) -> str:
    """What a file name is compared by when matching a directory listing
    against the names the handler computes.  Linux file systems compare
    bytes; macOS and Windows ones, by default, ignore case (and macOS also
    Unicode normalisation), so a backup whose name differs only so must not
    be missed there.  A match is only a candidate: it is checked with
    ``os.path.exists`` before anything is renamed."""
    if sys.platform in ("darwin", "win32"):
        return unicodedata.normalize("NFC", name).casefold()
    return name


def _names_in(directory: str) -> set[str] | None:
    """The keys of the names in ``directory``: an empty set if it does not
    exist, None if it cannot be listed (searchable but not readable)."""
    try:
        return {_same_name_key(name) for name in os.listdir(directory or ".")}
    except FileNotFoundError:
        return set()
    except OSError:
        return None


class RotatingFileHandler(SharedRotation, logging.handlers.RotatingFileHandler):
    """``logging.handlers.RotatingFileHandler`` that any number of processes
    may share.

    Same signature, file names (``app.log.1`` ... ``app.log.<backupCount>``),
    ``namer``/``rotator`` hooks and output bytes as the standard handler.  The
    rule is the standard one: before a record is written, the file rolls over
    when it is not empty and its size plus the length of the formatted record
    and a newline (in characters, as the standard handler measures it)
    reaches ``maxBytes``.  As in Python 3.13 (gh-116263), an empty file never
    rolls over; older standard handlers roll an empty file over when one
    record alone reaches ``maxBytes``.

    With ``maxBytes > 0``, each record is checked and written under an
    exclusive ``flock`` on ``<log>.lock``, against the file now at the path
    (reopened if another process rolled over), so across processes every
    file but the current one ends exactly where the next record would have
    reached ``maxBytes``, and each record is in exactly one file, whole.
    That costs two ``flock`` calls and one ``stat`` per record; the write
    itself is one ``os.write``.  With ``maxBytes == 0`` the handler never
    rolls over and takes no lock.  A rollover lists the log's directory once
    and then touches only the backups that exist, so with the default names
    its cost does not grow with ``backupCount`` (the standard handler looks
    at every number below it); with a ``namer`` it computes every number's
    name, without system calls.

    Thread-safe and fork-safe as ``safelog.FileHandler``; a forked child
    opens its own lock descriptor.  Where ``fcntl`` is missing (Windows) there
    is no lock: one process per file, as with the standard handler.
    """

    def __init__(
        self,
        filename: Any,
        mode: str = "a",
        maxBytes: int = 0,
        backupCount: int = 0,
        encoding: str | None = None,
        delay: bool = False,
        errors: str | None = None,
    ) -> None:
        # The standard handler appends whenever it rotates, and so decides.
        encoding = text_encoding(encoding, "a" if maxBytes > 0 else mode)
        logging.handlers.RotatingFileHandler.__init__(
            self, filename, mode, maxBytes, backupCount, encoding, delay, errors
        )
        self._register_for_fork()

    def _rollover_due(self, status: os.stat_result, length: int) -> bool:
        size = status.st_size
        return (
            self.maxBytes > 0
            and size > 0  # never roll an empty file over (gh-116263)
            and size + length >= self.maxBytes
            and _is_regular(status)  # never /dev/null and the like (bpo-45401)
        )

    def _roll_over(self) -> None:
        """The standard ``doRollover``, with the same checks, renames,
        ``rotation_filename``/``namer`` and ``rotate``/``rotator`` calls in the
        same order, but looking only at the backups that may exist (see
        ``_backups_to_shift``) instead of at every number below
        ``backupCount``.  Runs under the exclusive lock."""
        self._close_stream()
        if self.backupCount > 0:
            for number in self._backups_to_shift():
                source = self.rotation_filename(f"{self.baseFilename}.{number}")
                dest = self.rotation_filename(f"{self.baseFilename}.{number + 1}")
                if os.path.exists(source):
                    if os.path.exists(dest):
                        os.remove(dest)
                    os.rename(source, dest)
            dest = self.rotation_filename(self.baseFilename + ".1")
            if os.path.exists(dest):
                os.remove(dest)
            self.rotate(self.baseFilename, dest)
        if not self.delay:
            self.stream = self._open()

    def _backups_to_shift(self) -> list[int]:
        """The backup numbers, highest first, that the standard
        ``doRollover`` would find existing and move up by one: a superset of
        them, from one listing of the directory.

        The standard handler asks ``os.path.exists`` for every number from
        ``backupCount - 1`` down to 1, which with ``backupCount=2000`` costs
        thousands of system calls per rollover, all under the exclusive lock.
        The listing is taken under that lock too, and the renames that
        follow only create names of higher numbers, already looked at (for
        any namer that gives different numbers different names), so a
        number whose name is not in the listing would fail the standard
        check, and is skipped; the others get the standard checks, so gaps,
        dangling links and names that only match here are treated exactly
        as the standard handler treats them.  The cost is one
        listing plus a few calls per existing backup.  With the default
        names the listing is parsed; with a ``namer`` or an overridden
        ``rotation_filename`` every number's name is computed (no system
        call) and looked up.  A directory that cannot be listed falls back
        to every number."""
        every_number = range(self.backupCount - 1, 0, -1)
        default_names = not callable(self.namer) and (
            getattr(self.rotation_filename, "__func__", None)
            is logging.handlers.BaseRotatingHandler.rotation_filename
        )
        if default_names:
            directory, base_name = os.path.split(self.baseFilename)
            listed = _names_in(directory)
            if listed is None:
                return list(every_number)
            prefix = _same_name_key(base_name + ".")
            found = []
            for name in listed:
                suffix = name[len(prefix) :]
                if (
                    name.startswith(prefix)
                    and suffix.isascii()
                    and suffix.isdigit()
                    and str(int(suffix)) == suffix  # "app.log.01" is not ".1"
                    and 0 < int(suffix) < self.backupCount
                ):
                    found.append(int(suffix))
            return sorted(found, reverse=True)
        listings: dict[str, set[str] | None] = {}
        found = []
        for number in every_number:
            directory, name = os.path.split(
                self.rotation_filename(f"{self.baseFilename}.{number}")
            )
            if directory not in listings:
                listings[directory] = _names_in(directory)
            listed = listings[directory]
            if listed is None or _same_name_key(name) in listed:
                found.append(number)
        return found

    def shouldRollover(self, record: logging.LogRecord) -> bool:
        """Whether writing ``record`` now to this process's file would roll
        it over (a snapshot: ``emit`` decides again under the lock).  With
        ``maxBytes`` 0 it is False, and the record is not formatted."""
        if self.stream is None:  # opened, as the standard handler does
            self.stream = self._open()
        if self.maxBytes <= 0:
            return False
        status = os.fstat(self.stream.fileno())
        return self._rollover_due(status, len(self.format(record)) + 1)

    def _emit_text(self, record: logging.LogRecord, text: str) -> None:
        subclass_decides = self._rule_overridden(RotatingFileHandler)
        if self.maxBytes <= 0 and not subclass_decides:
            self._write(text)
            return
        lock = self._file_lock
        # Exclusive for check and write together: two writers that both saw
        # room for their record could otherwise push the file past maxBytes.
        lock.acquire(exclusive=True)
        try:
            status = self._follow_path()
            if (
                self.shouldRollover(record)
                if subclass_decides
                else self._rollover_due(status, len(text) + 1)
            ):
                self.doRollover()
                self._follow_path()  # opens the new file, even with delay
            self._write(text)
        finally:
            lock.release()


class TimedRotatingFileHandler(
    SharedRotation, logging.handlers.TimedRotatingFileHandler
):
    """``logging.handlers.TimedRotatingFileHandler`` that any number of
    processes may share.

    Same signature, backup names, ``namer``/``rotator`` hooks, deletion of old
    backups and output bytes as the standard handler; one process alone rolls
    over at the standard handler's times.  The first rollover of the file a
    handler finds when it is made follows the standard rule, from that
    file's modification time; a schedule stored for that file by another
    process refines it (one time for all) only when it is within one
    interval of it, never when it would contradict it (a schedule an earlier
    run left).  Across processes the schedule is shared: the process that
    rolls over stores the next rollover time in the lock file, with the
    identity of the new file, and every process that opens that file adopts
    it, so the first process to log at or after the due time rolls over,
    exactly once, and the others reopen.  A file that no safelog process has
    a schedule for (re-created after a move) gets the standard one, from its
    modification time, stored for the others.

    Each record is written under a shared ``flock`` (writers never wait for
    each other, only for a rollover), after checking that the file at the
    path is the one open.  With ``delay=True`` the new file is created at
    rollover, not at the next record, so that its schedule can be stored.
    Thread-safe and fork-safe as ``safelog.FileHandler``.  Where ``fcntl`` is
    missing (Windows) there is no lock: one process per file.
    """

    # The file whose schedule self.rolloverAt is, agreed with the others.
    _schedule_of: tuple[int, int] | None
    # Whether self.rolloverAt is still the one the standard __init__ computed.
    _schedule_from_init: bool
    # The file the standard rule took its modification time from.
    _init_file: tuple[int, int] | None

    def __init__(
        self,
        filename: Any,
        when: str = "h",
        interval: int = 1,
        backupCount: int = 0,
        encoding: str | None = None,
        delay: bool = False,
        utc: bool = False,
        atTime: Any = None,
        errors: str | None = None,
    ) -> None:
        encoding = text_encoding(encoding, "a")
        logging.handlers.TimedRotatingFileHandler.__init__(
            self,
            filename,
            when,
            interval,
            backupCount,
            encoding,
            delay,
            utc,
            atTime,
            errors,
        )
        self._register_for_fork()

    @classmethod
    def _safelog_state(cls, handler: Any) -> dict[str, Any]:
        state = super()._safelog_state(handler)
        # The schedule the standard __init__ computed (rolloverAt) follows
        # the standard rule, from the file at the path; no other process has
        # agreed to it yet.
        state["_schedule_of"] = None
        state["_schedule_from_init"] = True
        try:
            found = os.stat(handler.baseFilename)
        except OSError:
            state["_init_file"] = None
        else:
            state["_init_file"] = (found.st_dev, found.st_ino)
        return state

    def _schedule_key(self) -> str:
        # Handlers configured differently must not adopt each other's times.
        at_time = "-" if self.atTime is None else self.atTime.isoformat()
        return f"{self.when}/{self.interval}/{int(self.utc)}/{at_time}"

    def _adopt_schedule(self) -> bool:
        """Adopt the stored schedule if it is for the open file; under the
        lock (shared is enough).

        For the file this handler found when it was made, only a schedule
        within one interval of the standard rule's time is adopted: that is
        another process, started a little earlier, refining it to one time
        for all.  One further off (left by an earlier run, the file touched
        since) would contradict the standard rule: a restart past the due
        time would not roll over, or a fresh file would roll over early."""
        if fcntl is None:
            self._schedule_of = self._open_file
            return True
        fields = self._file_lock.read_note().split()
        if len(fields) == 4 and fields[3] == self._schedule_key():
            with contextlib.suppress(ValueError):
                noted_file = (int(fields[0]), int(fields[1]))
                noted = int(fields[2])
                if noted_file == self._open_file and (
                    noted_file != self._init_file
                    or abs(noted - self.rolloverAt) < self.interval
                ):
                    self.rolloverAt = noted
                    self._schedule_of = noted_file
                    return True
        return False

    def _store_schedule(self) -> None:
        """Store self.rolloverAt as the open file's schedule; under the
        exclusive lock."""
        assert self._open_file is not None
        dev, ino = self._open_file
        self._file_lock.write_note(
            f"{dev} {ino} {self.rolloverAt} {self._schedule_key()}\n"
        )
        self._schedule_of = self._open_file
        self._schedule_from_init = False

    def _settle_schedule(self, status: os.stat_result) -> None:
        """Agree on the open file's schedule; under the exclusive lock."""
        if self._schedule_of == self._open_file or self._adopt_schedule():
            return
        if not self._schedule_from_init:
            # As a process starting now would: from the modification time.
            self.rolloverAt = self.computeRollover(int(status.st_mtime))
        self._store_schedule()

    def _emit_text(self, record: logging.LogRecord, text: str) -> None:
        subclass_decides = self._rule_overridden(TimedRotatingFileHandler)
        lock = self._file_lock
        lock.acquire(exclusive=False)
        try:
            status = self._follow_path()
            agreed = self._schedule_of == self._open_file or self._adopt_schedule()
            if not agreed or subclass_decides or int(time.time()) >= self.rolloverAt:
                # flock converts by unlocking first: look again.
                lock.acquire(exclusive=True)
                status = self._follow_path()
                self._settle_schedule(status)
                now = int(time.time())
                due = (
                    self.shouldRollover(record)
                    if subclass_decides
                    else now >= self.rolloverAt
                )
                if due:
                    if _is_regular(status):
                        self.doRollover()
                        self._follow_path()
                    else:  # never /dev/null and the like (gh-89564)
                        self.rolloverAt = self.computeRollover(now)
            self._write(text)
        finally:
            lock.release()

    def _roll_over(self) -> None:
        due_at = self.rolloverAt
        super()._roll_over()
        if self.rolloverAt == due_at:
            # Python 3.13 returns early when the backup name exists already,
            # leaving the time due; move on, or every record would retry.
            self.rolloverAt = self.computeRollover(int(time.time()))
        if self.stream is None:  # delay=True: create it now, for its schedule
            self.stream = self._open()
        if fcntl is not None:
            self._store_schedule()
