"""safelog.DescriptorStream: one whole os.write per call, no buffer, no lock."""

from __future__ import annotations

import io
import json
import os
import sys
import threading
from pathlib import Path

import pytest

from safelog import DescriptorStream
from scenario import run_ok


def _read_all(fd: int, into: bytearray) -> None:
    while chunk := os.read(fd, 65536):
        into.extend(chunk)


def test_write_reaches_the_descriptor_at_once(tmp_path: Path) -> None:
    """Text is on the file as soon as write returns: nothing waits in Python."""
    path = tmp_path / "out.log"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    stream = DescriptorStream(fd, encoding="utf-8", at_start=True)
    assert 6 == stream.write("héllo\n")
    assert "héllo\n".encode() == path.read_bytes()
    os.close(fd)


def test_partial_writes_are_continued_until_whole() -> None:
    """A record larger than a pipe's buffer arrives whole, in order."""
    read_fd, write_fd = os.pipe()
    received = bytearray()
    reader = threading.Thread(target=_read_all, args=(read_fd, received))
    reader.start()
    stream = DescriptorStream(write_fd, encoding="ascii")
    text = "".join(f"{n:07d}\n" for n in range(200_000))  # 1.6 MB
    assert len(text) == stream.write(text)
    os.close(write_fd)
    reader.join(timeout=30)
    os.close(read_fd)
    assert text.encode() == bytes(received)


def test_byte_order_mark_written_once_at_start(tmp_path: Path) -> None:
    """utf-16 writes its byte order mark once, at the start of the file only."""
    path = tmp_path / "out.log"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    stream = DescriptorStream(fd, encoding="utf-16", at_start=True)
    stream.write("a\n")
    stream.write("b\n")
    os.close(fd)
    assert "a\nb\n".encode("utf-16") == path.read_bytes()


def test_no_byte_order_mark_when_not_at_start(tmp_path: Path) -> None:
    """Appending to a file that has content never inserts a byte order mark."""
    path = tmp_path / "out.log"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    DescriptorStream(fd, encoding="utf-16").write("a\n")
    os.close(fd)
    assert "a\n".encode("utf-16-le") == path.read_bytes()


def test_errors_handler_applies() -> None:
    """Unencodable text follows the errors handler, as with open()."""
    read_fd, write_fd = os.pipe()
    DescriptorStream(write_fd, encoding="ascii", errors="replace").write("é\n")
    os.close(write_fd)
    assert b"?\n" == os.read(read_fd, 100)
    os.close(read_fd)


def test_strict_errors_raise() -> None:
    """With errors='strict', unencodable text raises UnicodeEncodeError."""
    read_fd, write_fd = os.pipe()
    stream = DescriptorStream(write_fd, encoding="ascii")
    with pytest.raises(UnicodeEncodeError):
        stream.write("é")
    os.close(read_fd)
    os.close(write_fd)


def test_write_records_one_write_on_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Records written together reach a regular file in one os.write, with
    the bytes of writing them one by one."""
    path = tmp_path / "out.log"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    stream = DescriptorStream(fd, encoding="utf-8")
    writes: list[bytes] = []
    real_write = os.write

    def recording(to: int, data: bytes) -> int:
        writes.append(bytes(data))
        return real_write(to, data)

    monkeypatch.setattr(os, "write", recording)
    texts = [f"record {n} é\n" for n in range(50)]
    stream.write_records(texts, failed=lambda index: pytest.fail(str(index)))
    monkeypatch.undo()
    os.close(fd)
    assert "".join(texts).encode() == path.read_bytes()
    assert 1 == len(writes)


def test_write_records_reports_each_failure_inside_except(tmp_path: Path) -> None:
    """A text that does not encode, and the texts of a failed write, go to
    ``failed`` with their index while the error is being handled (as
    handleError reads it); the other texts are still written, in order."""
    path = tmp_path / "out.log"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    stream = DescriptorStream(fd, encoding="ascii")
    failures: list[tuple[int, type[BaseException] | None]] = []

    def failed(index: int) -> None:
        failures.append((index, sys.exc_info()[0]))

    stream.write_records(["a\n", "é\n", "b\n"], failed=failed)
    assert "a\nb\n" == path.read_text("ascii")
    assert [(1, UnicodeEncodeError)] == failures
    os.close(fd)
    failures.clear()
    stream.write_records(["c\n", "d\n"], failed=failed)  # EBADF
    assert [(0, OSError), (1, OSError)] == failures


def test_closed_stream_refuses_writes_and_leaves_foreign_fd_open() -> None:
    """Closing a stream without an owner leaves the descriptor open; writing to
    a closed stream raises ValueError, never writes to a reused descriptor."""
    read_fd, write_fd = os.pipe()
    stream = DescriptorStream(write_fd, encoding="utf-8")
    stream.close()
    stream.close()  # idempotent
    with pytest.raises(ValueError, match="closed file"):
        stream.write("x")
    os.write(write_fd, b"still open")
    assert b"still open" == os.read(read_fd, 100)
    os.close(read_fd)
    os.close(write_fd)


def test_closing_closes_the_owner(tmp_path: Path) -> None:
    """A stream made from an open() file closes that file's descriptor."""
    text_file = open(tmp_path / "out.log", "a", encoding="utf-8")  # noqa: SIM115
    stream = DescriptorStream.from_text_file(text_file, "a")
    fd = stream.fileno()
    stream.close()
    with pytest.raises(OSError):
        os.fstat(fd)


def test_looks_like_a_text_file(tmp_path: Path) -> None:
    """name, mode, encoding, errors, fileno and writable answer as a file's."""
    text_file = open(  # noqa: SIM115
        tmp_path / "out.log", "a", encoding="latin-1", errors="replace"
    )
    stream = DescriptorStream.from_text_file(text_file, "a")
    assert (str(tmp_path / "out.log"), "a", "latin-1", "replace") == (
        stream.name,
        stream.mode,
        stream.encoding,
        stream.errors,
    )
    assert stream.writable()
    assert not stream.isatty()
    assert isinstance(stream.fileno(), int)
    stream.close()


def test_child_stream_replaces_only_plain_text_files(tmp_path: Path) -> None:
    """A forked child writes straight to the descriptor only for a text file
    or pipe stream; a gzip or in-memory stream is kept, since its bytes differ
    from the encoded text (or it has no descriptor)."""
    import gzip
    import io

    from safelog._handlers import stream_for_child

    with (
        open(tmp_path / "plain.log", "w", encoding="utf-8") as plain,
        gzip.open(tmp_path / "packed.log.gz", "wt", encoding="utf-8") as packed,
    ):
        replaced = stream_for_child(plain)
        assert replaced is not None
        assert (plain.fileno(), "utf-8") == (replaced.fileno(), replaced.encoding)
        assert stream_for_child(packed) is None
        assert stream_for_child(io.StringIO()) is None


def test_child_stream_at_start_of_file_writes_byte_order_mark(tmp_path: Path) -> None:
    """A child's utf-16 stream on a file nothing was written to yet starts it
    with a byte order mark, as the parent's stream would have."""
    from safelog._handlers import stream_for_child

    path = tmp_path / "wide.log"
    with open(path, "w", encoding="utf-16") as wide:
        replaced = stream_for_child(wide)
        assert replaced is not None
        replaced.write("a\n")
    assert "a\n".encode("utf-16") == path.read_bytes()


# A file size limit (RLIMIT_FSIZE) makes the kernel write part of a record,
# then refuse the rest, as a disk that fills up does; raising it again gives
# the room back.  Run in a child interpreter: the limit is process-wide.
FULL_DISK = """
import json, logging, resource, signal, sys, threading
import safelog
PATH, KIND = sys.argv[1], sys.argv[2]
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
errors = []
def record(message):
    return logging.makeLogRecord({"msg": message, "levelno": 20})
def full_after(size):
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, hard))
def room_again():
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
texts = ["rec-0 " + "x" * 50, "rec-1 " + "y" * 50, "rec-2 " + "z" * 50]
if KIND == "queue":  # the three come in one batch, written in one os.write
    target = safelog.FileHandler(PATH)
    target.handleError = lambda r: errors.append(r.getMessage())
    entered, gate = threading.Event(), threading.Event()
    class Gate(logging.Handler):
        def emit(self, r):
            entered.set()
            gate.wait(10)
    queued = safelog.QueueHandler([Gate(), target])
    queued.handle(record("hold"))
    entered.wait(10)
    for text in texts:
        queued.handle(record(text))
    full_after(len("hold\\n") + 57 + 30)  # in the middle of rec-1
    gate.set()
    queued.flush()
    room_again()
    queued.handle(record("rec-after"))
    queued.close()
else:
    handler = (safelog.FileHandler if KIND == "safelog" else logging.FileHandler)(PATH)
    handler.handleError = lambda r: errors.append(r.getMessage())
    handler.handle(record(texts[0]))
    full_after(57 + 30)  # in the middle of rec-1
    handler.handle(record(texts[1]))
    handler.handle(record(texts[2]))
    room_again()
    handler.handle(record("rec-after"))
    handler.close()
print(json.dumps(errors))
"""


@pytest.mark.parametrize("kind", ["safelog", "queue", "stdlib"])
def test_full_disk_completes_the_torn_record(tmp_path: Path, kind: str) -> None:
    """The disk fills in the middle of a record: that record and the one
    that finds no room are reported, each once, and only those (through the
    queue handler too, whose batch was one write); once there is room, the
    torn record is completed before the next one, so none is glued to
    another.  (The standard handler, whose buffer keeps every byte, writes
    the refused record later too.)"""
    path = tmp_path / "out.log"
    outcome = run_ok(FULL_DISK, args=(str(path), kind), timeout=30)
    errors = json.loads(outcome.stdout)
    assert [f"rec-{n} " + "xyz"[n] * 50 for n in (1, 2)] == errors
    lines = path.read_text().splitlines()
    expected = ["rec-0 " + "x" * 50, "rec-1 " + "y" * 50, "rec-after"]
    if kind == "queue":
        expected.insert(0, "hold")
    if kind == "stdlib":
        expected.insert(2, "rec-2 " + "z" * 50)
    assert expected == lines


def test_child_honours_the_socket_timeout() -> None:
    """A StreamHandler on a socket's makefile(), the socket with a timeout
    (so its descriptor is non-blocking): a forked child's records, written
    straight to the descriptor, wait for a slow reader as the socket would,
    and all arrive."""
    outcome = run_ok(
        """
        import logging, os, socket, time
        import safelog
        writer, reader = socket.socketpair()
        writer.settimeout(10)
        handler = safelog.StreamHandler(writer.makefile("w"))
        log = logging.getLogger("sock"); log.addHandler(handler); log.propagate = False
        pid = os.fork()
        if pid == 0:
            for number in range(2000):
                log.warning("record %04d %s", number, "x" * 200)
            os._exit(0)
        handler.stream.close()  # the parent's copy: the child's stays open
        writer.close()  # until the child exits
        received = bytearray()
        while chunk := reader.recv(4096):
            received.extend(chunk)
            time.sleep(0.001)  # a slow reader: the socket's buffer fills up
        os.waitpid(pid, 0)
        lines = received.decode().splitlines()
        print(len(lines), len(set(lines)))
        """,
        timeout=60,
    )
    assert "2000 2000" == outcome.stdout.split("\n")[-2]


def test_file_api_as_open(tmp_path: Path) -> None:
    """tell(), seek(), seekable(), readable(), read() and readline() do what
    they do on a text file from open(); write() of bytes raises TypeError."""
    path = tmp_path / "out.log"
    path.write_text("old line\n")
    fd = os.open(path, os.O_RDWR | os.O_APPEND)
    stream = DescriptorStream(fd, encoding="utf-8", mode="a+")
    try:
        stream.write("new line\n")
        assert stream.seekable()
        assert stream.readable()
        assert 18 == stream.tell()
        assert 0 == stream.seek(0)
        assert "old line\n" == stream.readline()
        assert "new line\n" == stream.read()
        assert 18 == stream.seek(0, os.SEEK_END)
        with pytest.raises(io.UnsupportedOperation):
            stream.seek(5, os.SEEK_CUR)
        with pytest.raises(TypeError, match="must be str, not bytes"):
            stream.write(b"x")  # type: ignore[arg-type]
        assert stream.write_through and not stream.line_buffering
        stream.buffer.write(b"raw\n")
        assert "old line\nnew line\nraw\n" == path.read_text()
    finally:
        os.close(fd)


def test_file_api_refusals_as_open() -> None:
    """On a pipe: not seekable, tell() and seek() raise UnsupportedOperation;
    a write-only stream is not readable."""
    read_fd, write_fd = os.pipe()
    stream = DescriptorStream(write_fd, encoding="utf-8", mode="w")
    try:
        assert not stream.seekable()
        assert not stream.readable()
        for call in (stream.tell, lambda: stream.seek(0), stream.read):
            with pytest.raises(io.UnsupportedOperation):
                call()
    finally:
        os.close(read_fd)
        os.close(write_fd)


# A forked child's StreamHandler writes through a DescriptorStream; a file
# size limit cuts one of its records short, so the stream keeps the rest.
# Then the child forks: the grandchild logs, and so does the child.
TAIL_KEPT_AT_FORK = """
import logging, os, resource, signal, sys, time
import safelog
from safelog._harness import wait_for_children
PATH = sys.argv[1]
def wait(pid):
    if wait_for_children({pid: time.monotonic() + 20})[pid] is None:
        sys.exit("hung")
handler = safelog.StreamHandler(open(PATH, "a"))
handler.setFormatter(logging.Formatter("%(message)s"))
handler.handleError = lambda record: None
log = logging.getLogger("tail"); log.addHandler(handler); log.propagate = False
log.warning("parent")
child = os.fork()
if child == 0:
    try:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails: EFBIG
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (os.path.getsize(PATH) + 8, hard))
        log.warning("child: torn record")
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        grandchild = os.fork()
        if grandchild == 0:
            try:
                log.warning("grandchild")
            finally:
                os._exit(0)
        wait(grandchild)
        log.warning("child again")
    finally:
        os._exit(0)
wait(child)
"""


def test_grandchild_leaves_the_rest_of_a_torn_record_to_its_parent(
    tmp_path: Path,
) -> None:
    """A forked child's record is cut short (a full disk), then the child
    forks: the rest of that record is written once, by the child that began
    it, not by the grandchild as well.  (The grandchild's record lands after
    the first part: another process's write, see DescriptorStream.)"""
    path = tmp_path / "out.log"
    run_ok(TAIL_KEPT_AT_FORK, args=(str(path),), timeout=60)
    # The limit let 8 bytes through: "child: t".
    expected = ["parent", "child: tgrandchild", "orn record", "child again"]
    assert expected == path.read_text().splitlines()


# A long record goes to a full non-blocking pipe in pieces; SIGALRM arrives
# while the write waits for room, and its handler raises KeyboardInterrupt
# (Ctrl-C).  The log call raises it; the next record must not be glued onto
# the torn one.  (On a blocking pipe the signal can land right after a
# partial os.write() returns, before its count is stored: that count is
# lost to Python code, and so is the rest of the record.)
INTERRUPTED_LONG_WRITE = """
import json, logging, os, signal, time
import safelog
read_end, write_end = os.pipe()
os.set_blocking(write_end, False)
handler = safelog.StreamHandler(safelog.DescriptorStream(write_end, encoding="utf-8"))
handler.setFormatter(logging.Formatter("%(message)s"))
log = logging.getLogger("interrupted"); log.addHandler(handler); log.propagate = False
pid = os.fork()
if pid == 0:
    try:
        os.close(read_end)
        def on_alarm(signum, frame):
            raise KeyboardInterrupt
        signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        try:
            log.warning("LONG-START " + "x" * 200_000 + " LONG-END")
        except KeyboardInterrupt:
            pass
        log.warning("NEXT")
    finally:
        os._exit(0)
os.close(write_end)
time.sleep(1.0)  # the child fills the pipe; SIGALRM interrupts its wait
received = bytearray()
while chunk := os.read(read_end, 65536):
    received.extend(chunk)
os.waitpid(pid, 0)
print(json.dumps(received.decode().splitlines()))
"""


def test_write_interrupted_by_a_raising_signal_handler_keeps_the_rest() -> None:
    """Ctrl-C while a long record waits for room in a full non-blocking
    pipe: the log call raises, and the rest of the record is written before
    the next one."""
    outcome = run_ok(INTERRUPTED_LONG_WRITE, timeout=60)
    lines = json.loads(outcome.stdout.splitlines()[-1])
    assert ["LONG-START " + "x" * 200_000 + " LONG-END", "NEXT"] == lines
