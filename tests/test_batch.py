"""Batch delivery: safelog.QueueHandler's writer hands a safelog FileHandler
(or a StreamHandler on a DescriptorStream) every record it took off the queue
at once, written in one os.write.  What must not change: the bytes, the order,
and that a record failing alone costs no other record."""

from __future__ import annotations

import logging
import os
import pathlib
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any
from unittest import mock

import pytest

import safelog
import scenario
from records import log_mixed
from safelog._delivery import _batch_handler
from safelog._handlers import _BatchWritingHandler

FORMAT = "%(asctime)s %(levelname)s %(name)s %(process)d %(threadName)s: %(message)s"


class Gate(logging.Handler):
    """A target that holds the writer on its first record until opened, so
    that everything logged meanwhile reaches the others as one batch."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.opened = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.entered.set()
        self.opened.wait(10)


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    """A logger of its own, not propagating, at DEBUG."""
    named = logging.getLogger(f"test_batch.{time.monotonic_ns()}")
    named.setLevel(logging.DEBUG)
    named.propagate = False
    yield named


@pytest.fixture
def batch_sizes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of every batch the writer hands to a target at once."""
    sizes: list[int] = []
    real = _BatchWritingHandler._handle_batch

    def counting(
        handler: _BatchWritingHandler,
        records: Sequence[logging.LogRecord],
        reported: type[BaseException] = Exception,
    ) -> None:
        sizes.append(len(records))
        real(handler, records, reported)

    monkeypatch.setattr(_BatchWritingHandler, "_handle_batch", counting)
    return sizes


def held(
    logger: logging.Logger,
    targets: Sequence[logging.Handler],
    direct: Sequence[logging.Handler] = (),
) -> tuple[safelog.QueueHandler, Gate]:
    """A QueueHandler on ``targets`` (then ``direct`` handlers) on ``logger``,
    whose writer is held inside a first record, "hold", so that the records
    logged next are queued together.  The targets get "hold" first."""
    gate = Gate()
    queued = safelog.QueueHandler([gate, *targets])
    logger.addHandler(queued)
    for handler in direct:
        logger.addHandler(handler)
    logger.critical("hold")
    assert gate.entered.wait(5)
    return queued, gate


def configure(handlers: list[logging.FileHandler]) -> None:
    """The same levels, filters and formatters on each of ``handlers``."""
    plain, braces = handlers[0::2], handlers[1::2]
    for handler in plain:
        handler.setLevel(logging.INFO)
        handler.setFormatter(logging.Formatter(FORMAT, datefmt="%H:%M:%S"))
        handler.addFilter(lambda record: "secret" not in record.getMessage())
    for handler in braces:
        handler.setFormatter(logging.Formatter("{levelname}|{message}", style="{"))
        # A replacement record on 3.12+, just True before.
        handler.addFilter(
            lambda record: logging.makeLogRecord({**record.__dict__, "tag": "t"})
        )


def test_batch_bytes_equal_direct(
    logger: logging.Logger, tmp_path: pathlib.Path, batch_sizes: list[int]
) -> None:
    """Records written as one batch are the bytes each target writes when
    called directly, with levels, filters and formatters mixed."""
    direct = [safelog.FileHandler(tmp_path / f"direct{i}.log") for i in range(2)]
    batched = [safelog.FileHandler(tmp_path / f"batched{i}.log") for i in range(2)]
    configure(direct)
    configure(batched)
    queued, gate = held(logger, batched, direct)
    log_mixed(logger)
    gate.opened.set()
    queued.close()
    for handler in direct:
        handler.close()
    for index in range(2):
        expected = (tmp_path / f"direct{index}.log").read_bytes()
        assert expected == (tmp_path / f"batched{index}.log").read_bytes()
    assert max(batch_sizes) >= 40


def test_format_error_loses_no_other_record(
    logger: logging.Logger, tmp_path: pathlib.Path, batch_sizes: list[int]
) -> None:
    """A record that fails to format, to encode or in a filter goes to
    handleError alone; every other record of its batch is written, in order."""

    class Recording(safelog.FileHandler):
        failed: list[str]

        def handleError(self, record: logging.LogRecord) -> None:
            self.failed.append(str(record.msg))

    class Picky(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            if record.msg == "bad format":
                raise RuntimeError("cannot format this one")
            return super().format(record)

    def picky_filter(record: logging.LogRecord) -> bool:
        if record.msg == "bad filter":
            raise RuntimeError("cannot filter this one")
        return True

    path = tmp_path / "ascii.log"
    target = Recording(path, encoding="ascii")
    target.failed = []
    target.setFormatter(Picky("%(message)s"))
    target.addFilter(picky_filter)
    queued, gate = held(logger, [target])
    expected = ["hold"]
    for index in range(30):
        logger.info("r%d", index)
        expected.append(f"r{index}")
        if index == 10:
            logger.info("bad format")
        if index == 15:
            logger.info("not ascii: é")
        if index == 20:
            logger.info("bad filter")
    gate.opened.set()
    queued.close()
    assert "\n".join(expected) + "\n" == path.read_text("ascii")
    assert ["bad format", "not ascii: é", "bad filter"] == sorted(
        target.failed, key=["bad format", "not ascii: é", "bad filter"].index
    )
    assert 33 in batch_sizes


def test_write_error_reported_per_record(
    logger: logging.Logger, tmp_path: pathlib.Path
) -> None:
    """A failed write goes to handleError once for each record in it."""

    class Recording(safelog.FileHandler):
        failed: list[str]

        def handleError(self, record: logging.LogRecord) -> None:
            self.failed.append(record.getMessage())

    target = Recording(tmp_path / "closed.log")
    target.failed = []
    queued, gate = held(logger, [target])
    for index in range(5):
        logger.info("r%d", index)
    os.close(target.stream.fileno())  # EBADF on the next writes, "hold" first
    gate.opened.set()
    queued.flush()
    assert ["hold", *(f"r{index}" for index in range(5))] == target.failed


def test_order_kept_across_batches_and_targets(
    logger: logging.Logger, tmp_path: pathlib.Path, batch_sizes: list[int]
) -> None:
    """Many batches from several threads: each target gets every record
    once, and each thread's records in the order it logged them."""
    paths = [tmp_path / "a.log", tmp_path / "b.log"]
    targets = [safelog.FileHandler(path) for path in paths]
    lines: list[str] = []

    class Collecting(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    queued = safelog.QueueHandler([targets[0], Collecting(), targets[1]])
    logger.addHandler(queued)

    def work(index: int) -> None:
        for seq in range(2000):
            logger.info("t%d %d", index, seq)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    queued.close()
    for found in [path.read_text().splitlines() for path in paths] + [lines]:
        assert 6000 == len(found) == len(set(found))
        for index in range(3):
            mine = [line for line in found if line.startswith(f"t{index} ")]
            assert [f"t{index} {seq}" for seq in range(2000)] == mine
    assert max(batch_sizes) > 1


def test_flush_from_target_mid_batch_keeps_order(
    logger: logging.Logger, tmp_path: pathlib.Path
) -> None:
    """A target that flushes the queue handler on the writer, in the middle
    of a batch, gets the rest of that batch before later records, and so does
    a file target after it."""
    path = tmp_path / "after.log"
    lines: list[str] = []

    class Flushing(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())
            if record.getMessage() == "flush me":
                logger.info("logged during the flush")
                queued.flush()

    after = safelog.FileHandler(path)
    queued, gate = held(logger, [Flushing(), after])
    logger.info("a")
    logger.info("flush me")
    logger.info("b")
    gate.opened.set()
    queued.flush()
    logger.info("c")
    queued.close()
    expected = ["hold", "a", "flush me", "b", "logged during the flush", "c"]
    assert expected == lines, lines
    assert expected == path.read_text().splitlines()


def test_overridden_emit_not_batched(
    logger: logging.Logger, tmp_path: pathlib.Path
) -> None:
    """A subclass with its own emit(), and the rotating and watched handlers,
    get each record through emit() as before."""
    emitted: list[str] = []

    class Counting(safelog.FileHandler):
        def emit(self, record: logging.LogRecord) -> None:
            emitted.append(record.getMessage())
            super().emit(record)

    target = Counting(tmp_path / "counting.log")
    queued, gate = held(logger, [target])
    for index in range(20):
        logger.info("r%d", index)
    gate.opened.set()
    queued.close()
    assert ["hold", *(f"r{index}" for index in range(20))] == emitted
    others = [
        safelog.WatchedFileHandler(tmp_path / "watched.log"),
        safelog.RotatingFileHandler(tmp_path / "rotating.log", maxBytes=100),
        safelog.TimedRotatingFileHandler(tmp_path / "timed.log"),
        logging.FileHandler(tmp_path / "stdlib.log"),
    ]
    try:
        assert [None] * len(others) == [_batch_handler(h) for h in others]
        assert _batch_handler(safelog.FileHandler(tmp_path / "plain.log"))
    finally:
        for handler in others:
            handler.close()


def test_subclass_methods_decide_batching(
    logger: logging.Logger, tmp_path: pathlib.Path, batch_sizes: list[int]
) -> None:
    """A subclass, or a mixin, with its own handle() or flush() sees each
    record; one with only its own format() still takes batches, formatted
    by it."""

    class OwnHandle(safelog.FileHandler):
        def handle(self, record: logging.LogRecord) -> Any:
            return super().handle(record)

    class FlushMixin:
        def flush(self) -> None:
            super().flush()  # type: ignore[misc]

    class MixedFlush(FlushMixin, safelog.StreamHandler):
        pass

    class Shouting(safelog.FileHandler):
        def format(self, record: logging.LogRecord) -> str:
            return super().format(record).upper()

    read_end, write_end = os.pipe()
    child_like = safelog.DescriptorStream(write_end, encoding="utf-8")
    path = tmp_path / "shouting.log"
    handlers = [
        OwnHandle(tmp_path / "own.log"),
        MixedFlush(child_like),  # type: ignore[arg-type]
        Shouting(path),
    ]
    try:
        assert [None, None] == [_batch_handler(h) for h in handlers[:2]]
        queued, gate = held(logger, [handlers[2]])
        for index in range(20):
            logger.info("r%d", index)
        gate.opened.set()
        queued.close()
        expected = ["HOLD", *(f"R{index}" for index in range(20))]
        assert expected == path.read_text().splitlines()
        assert 20 in batch_sizes
    finally:
        for handler in handlers:
            handler.close()
        os.close(read_end)
        os.close(write_end)


@pytest.mark.skipif(not hasattr(os, "pipe"), reason="needs os.pipe")
def test_pipe_writes_keep_records_whole(
    logger: logging.Logger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a pipe a batch is written in pieces of whole records, none longer
    than PIPE_BUF unless it is a single longer record (as before)."""
    import select

    pipe_buf = getattr(select, "PIPE_BUF", 512)
    read_end, write_end = os.pipe()
    stream = safelog.DescriptorStream(write_end, encoding="utf-8")
    target = safelog.StreamHandler(stream)  # type: ignore[arg-type]
    writes: list[bytes] = []
    real_write = os.write

    def recording(fd: int, data: bytes) -> int:
        if fd == write_end:
            writes.append(bytes(data))
        return real_write(fd, data)

    queued, gate = held(logger, [target])
    monkeypatch.setattr(os, "write", recording)
    messages = [f"r{index} " + "x" * (index * 7 % 300) for index in range(60)]
    messages.insert(30, "long " + "y" * (2 * pipe_buf))
    for message in messages:
        logger.info(message)
    messages.insert(0, "hold")
    gate.opened.set()
    queued.flush()
    monkeypatch.undo()
    queued.close()
    os.close(write_end)
    received = b""
    while chunk := os.read(read_end, 65536):
        received += chunk
    os.close(read_end)
    assert "".join(f"{m}\n" for m in messages).encode() == received
    assert b"".join(writes) == received
    assert len(writes) < len(messages)
    for data in writes:
        assert data.endswith(b"\n")
        assert len(data) <= pipe_buf or data.count(b"\n") == 1


def test_utf16_byte_order_mark_once(
    logger: logging.Logger, tmp_path: pathlib.Path
) -> None:
    """A stateful encoding (a byte order mark) gives the bytes of writing
    the records one by one."""
    direct_path, batched_path = tmp_path / "direct.log", tmp_path / "batched.log"
    direct = safelog.FileHandler(direct_path, mode="w", encoding="utf-16")
    batched = safelog.FileHandler(batched_path, mode="w", encoding="utf-16")
    queued, gate = held(logger, [batched], [direct])
    for index in range(10):
        logger.info("r%d é", index)
    gate.opened.set()
    queued.close()
    direct.close()
    assert direct_path.read_bytes() == batched_path.read_bytes()
    assert batched_path.read_text("utf-16").splitlines()[-1] == "r9 é"


def test_long_records_split_between_whole_records(
    logger: logging.Logger, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch of long records goes to a file in several writes, each of
    whole records, with the bytes of writing them one by one."""
    path = tmp_path / "long.log"
    target = safelog.FileHandler(path)
    fd = target.stream.fileno()
    writes: list[bytes] = []
    real_write = os.write

    def recording(to: int, data: bytes) -> int:
        if to == fd:
            writes.append(bytes(data))
        return real_write(to, data)

    queued, gate = held(logger, [target])
    monkeypatch.setattr(os, "write", recording)
    messages = [f"r{index} " + "z" * 300_000 for index in range(8)]
    for message in messages:
        logger.info(message)
    gate.opened.set()
    queued.flush()
    monkeypatch.undo()
    queued.close()
    expected = "".join(f"{m}\n" for m in ["hold", *messages]).encode()
    assert expected == path.read_bytes()
    assert 2 < len(writes) < 9
    for data in writes:
        assert data.endswith(b"\n")


def test_emit_patched_after_the_class_was_made_sees_each_record(
    logger: logging.Logger, tmp_path: pathlib.Path
) -> None:
    """An emit() put on the class later (mock.patch.object, instrumentation
    wrapping it) is called for each queued record, as handle() calls it."""
    emitted: list[str] = []

    def spy(self: logging.Handler, record: logging.LogRecord) -> None:
        emitted.append(record.getMessage())

    class Mine(safelog.FileHandler):
        pass

    for patched in (safelog.FileHandler, Mine):
        emitted.clear()
        target = Mine(tmp_path / f"{patched.__name__}.log")
        with mock.patch.object(patched, "emit", spy):
            queued, gate = held(logger, [target])
            for index in range(3):
                logger.info("r%d", index)
            gate.opened.set()
            queued.close()
        logger.removeHandler(queued)
        target.close()
        assert ["hold", "r0", "r1", "r2"] == emitted, patched


def test_a_wrapper_forwarding_attributes_gets_its_own_handle_called(
    logger: logging.Logger, tmp_path: pathlib.Path
) -> None:
    """A target that forwards unknown attributes to a safelog FileHandler
    (``__getattr__``) is judged by its own class: its handle() sees each
    record, and may drop one."""

    class Redacting(logging.Handler):
        def __init__(self, inner: logging.Handler) -> None:
            super().__init__()
            self.inner = inner

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

        def handle(self, record: logging.LogRecord) -> Any:
            if "password" in record.getMessage():
                return False
            return self.inner.handle(record)

    path = tmp_path / "redacted.log"
    inner = safelog.FileHandler(path)
    inner.setFormatter(logging.Formatter("%(message)s"))
    queued = safelog.QueueHandler([Redacting(inner)])
    logger.addHandler(queued)
    logger.info("public")
    logger.info("password=hunter2")
    queued.close()
    inner.close()
    assert ["public"] == path.read_text().splitlines()


def test_uninstall_during_a_batch_costs_no_record() -> None:
    """install() and uninstall() in a loop while a thread logs through a
    QueueHandler to a converted FileHandler: the class changes between the
    writer's look at it and the batch, yet every record is written once and
    the writer never fails."""
    result = scenario.run_json(
        """
        import json, logging, os, sys, tempfile, threading, time
        import safelog

        sys.setswitchinterval(1e-5)  # switch threads often: widen the race
        path = os.path.join(tempfile.mkdtemp(), "raced.log")
        failures = []

        class Reporting(safelog.QueueHandler):
            def handleError(self, record):
                failures.append(repr(sys.exc_info()[1]))

        target = logging.FileHandler(path)
        target.setFormatter(logging.Formatter("%(message)s"))
        converted = logging.getLogger("converted")
        converted.propagate = False
        converted.addHandler(target)
        queued = Reporting([target])
        source = logging.getLogger("source")
        source.propagate = False
        source.addHandler(queued)
        stop = threading.Event()
        sent = [0]

        def log():
            while not stop.is_set() and sent[0] < 2_000_000:
                for _ in range(200):
                    source.warning("m%d", sent[0])
                    sent[0] += 1
                time.sleep(0.0005)

        thread = threading.Thread(target=log)
        thread.start()
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline and not failures:
            safelog.install(std_streams=False)
            time.sleep(0.0003)
            safelog.uninstall()
        stop.set()
        thread.join()
        queued.close()
        with open(path) as log_file:
            written = log_file.read().splitlines()
        expected = [f"m{index}" for index in range(sent[0])]
        print(json.dumps({"failures": failures[:3], "exact": written == expected}))
        """,
        timeout=60,
    )
    assert {"failures": [], "exact": True} == result


def test_a_target_without_a_lock_loses_no_record_silently(
    logger: logging.Logger, tmp_path: pathlib.Path
) -> None:
    """A FileHandler subclass whose createLock() leaves ``lock`` None: each
    queued record is written (before 3.13, as the standard handle() skips a
    None lock) or reported to its handleError (3.13+, where ``with None``
    raises), never lost with the writer."""
    failed: list[str] = []

    class NoLock(safelog.FileHandler):
        def createLock(self) -> None:
            self.lock = None  # type: ignore[assignment]

        def handleError(self, record: logging.LogRecord) -> None:
            failed.append(record.getMessage())

    path = tmp_path / "unlocked.log"
    target = NoLock(path)
    target.setFormatter(logging.Formatter("%(message)s"))
    queued = safelog.QueueHandler([target])
    logger.addHandler(queued)
    for index in range(3):
        logger.info("r%d", index)
    queued.flush()
    written = path.read_text().splitlines()
    assert ["r0", "r1", "r2"] == sorted(written + failed)
    logger.removeHandler(queued)
    queued.close()
    target.lock = threading.RLock()  # so that close() can take it
    target.close()
