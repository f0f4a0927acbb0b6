"""safelog.FileHandler and safelog.StreamHandler are drop-in replacements:
same bytes, same attributes, same errors at the same moment as the stdlib
handlers they subclass.  Nothing here forks (see test_fork.py for that)."""

from __future__ import annotations

import io
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest

import safelog
import scenario

CREATED = 1_700_000_000.25
UNICODE_TEXT = "café ✓ 世界 €"
LATIN1_TEXT = "café naïve ±"


def _exc_info() -> Any:
    try:
        raise ValueError(f"boom: {LATIN1_TEXT}")
    except ValueError:
        return sys.exc_info()


EXC_INFO = _exc_info()


def make_records(text: str) -> list[logging.LogRecord]:
    """Fresh records (formatters cache on them), with a fixed creation time."""
    fields: list[dict[str, Any]] = [
        {"msg": "plain %s", "args": (text,)},
        {"msg": "first line\nsecond line %d", "args": (2,)},
        {"msg": "with exception", "exc_info": EXC_INFO, "levelname": "ERROR"},
        {
            "msg": "with stack",
            "stack_info": 'Stack (most recent call last):\n  File "app.py", line 1',
        },
        {"msg": text, "args": ()},
    ]
    records = []
    for extra in fields:
        record = logging.makeLogRecord(
            {"name": "app.module", "levelname": "INFO", "levelno": 20, **extra}
        )
        record.created, record.msecs, record.relativeCreated = CREATED, 250.0, 0.0
        records.append(record)
    return records


FORMATTERS: dict[str, Callable[[], logging.Formatter | None]] = {
    "plain": lambda: None,
    "percent": lambda: logging.Formatter(
        "%(asctime)s %(levelname)-8s %(name)s [%(process)s] %(message)s"
    ),
    "brace": lambda: logging.Formatter(
        "{asctime} [{levelname}] {name}: {message}", style="{"
    ),
    "dollar": lambda: logging.Formatter(
        "${asctime} ${levelname} ${message}", style="$"
    ),
}

ENCODINGS = [
    ("utf-8", None),
    ("latin-1", None),
    ("utf-16", None),
    ("utf-8-sig", None),
    ("ascii", "replace"),
    ("ascii", "backslashreplace"),
    ("ascii", "ignore"),
]


def text_for(encoding: str, errors: str | None) -> str:
    """Text the encoding can write under ``errors`` (strict latin-1 cannot
    write UNICODE_TEXT; see test_unencodable_record_goes_to_handle_error)."""
    return LATIN1_TEXT if (encoding, errors) == ("latin-1", None) else UNICODE_TEXT


HANDLER_CLASSES = {"stdlib": logging.FileHandler, "safelog": safelog.FileHandler}
STREAM_HANDLER_CLASSES = {
    "stdlib": logging.StreamHandler,
    "safelog": safelog.StreamHandler,
}


def handler_on_file(name: str, kind: str, path: Path, encoding: str) -> Any:
    """The ``name`` ("stdlib" or "safelog") FileHandler on ``path``, or for
    kind "stream" its StreamHandler on a file opened there."""
    if kind == "file":
        return HANDLER_CLASSES[name](path, encoding=encoding)
    stream = open(path, "w", encoding=encoding)  # noqa: SIM115
    return STREAM_HANDLER_CLASSES[name](stream)


def close_with_stream(handler: logging.StreamHandler[Any]) -> None:
    handler.close()  # closes a FileHandler's stream, not a StreamHandler's
    if handler.stream is not None:
        handler.stream.close()


# -- byte-identical output -----------------------------------------------------


@pytest.mark.parametrize("formatter", FORMATTERS)
@pytest.mark.parametrize(("encoding", "errors"), ENCODINGS)
@pytest.mark.parametrize("mode", ["w", "a"])
@pytest.mark.parametrize("existing", [False, True], ids=["new", "existing"])
@pytest.mark.parametrize("delay", [False, True], ids=["open", "delay"])
def test_file_handler_writes_stdlib_bytes(
    tmp_path: Path,
    formatter: str,
    encoding: str,
    errors: str | None,
    mode: str,
    existing: bool,
    delay: bool,
) -> None:
    """FileHandler writes the bytes logging.FileHandler writes, for each
    formatter style, encoding, errors, mode and delay, appending to an
    existing file without a second byte order mark."""
    text = text_for(encoding, errors)
    output = {}
    for name, handler_class in HANDLER_CLASSES.items():
        path = tmp_path / f"{name}.log"
        if existing:
            with open(path, "w", encoding=encoding, errors=errors) as previous:
                previous.write("written before\n")
        handler = handler_class(
            path, mode=mode, encoding=encoding, delay=delay, errors=errors
        )
        handler.setFormatter(FORMATTERS[formatter]())  # type: ignore[arg-type]
        for record in make_records(text):
            handler.handle(record)
        handler.close()
        output[name] = path.read_bytes()
    assert output["stdlib"] == output["safelog"]


@pytest.mark.parametrize("encoding", ["utf-16", "utf-8-sig"])
def test_append_writes_one_byte_order_mark(tmp_path: Path, encoding: str) -> None:
    """Appending with a BOM encoding, over several handlers in turn, leaves
    exactly one byte order mark, at the start of the file."""
    path = tmp_path / "bom.log"
    for n in range(3):
        handler = safelog.FileHandler(path, encoding=encoding)
        handler.handle(logging.makeLogRecord({"msg": f"record {n}"}))
        handler.close()
    assert "record 0\nrecord 1\nrecord 2\n" == path.read_text(encoding=encoding)
    with open(path, "rb") as f:
        data = f.read()
    bom = "".encode(encoding)  # the encoder writes its mark even for ""
    assert (1, True) == (data.count(bom), data.startswith(bom))


@pytest.mark.parametrize("terminator", ["\r\n", "", " ¦ "])
@pytest.mark.parametrize("kind", ["file", "stream"])
def test_custom_terminator_writes_stdlib_bytes(
    tmp_path: Path, terminator: str, kind: str
) -> None:
    """A custom terminator is written as the stdlib writes it."""
    output = {}
    for name in ("stdlib", "safelog"):
        path = tmp_path / f"{name}.log"
        handler = handler_on_file(name, kind, path, "utf-8")
        handler.terminator = terminator
        for record in make_records(UNICODE_TEXT):
            handler.handle(record)
        close_with_stream(handler)
        output[name] = path.read_bytes()
    assert output["stdlib"] == output["safelog"]


@pytest.mark.parametrize("formatter", FORMATTERS)
@pytest.mark.parametrize(("encoding", "errors"), ENCODINGS)
def test_stream_handler_writes_stdlib_bytes(
    tmp_path: Path, formatter: str, encoding: str, errors: str | None
) -> None:
    """StreamHandler on a file stream writes the bytes logging.StreamHandler
    writes, for each formatter style, encoding and errors."""
    text = text_for(encoding, errors)
    output = {}
    for name, handler_class in STREAM_HANDLER_CLASSES.items():
        path = tmp_path / f"{name}.log"
        with open(path, "w", encoding=encoding, errors=errors) as stream:
            handler = handler_class(stream)
            handler.setFormatter(FORMATTERS[formatter]())  # type: ignore[arg-type]
            for record in make_records(text):
                handler.handle(record)
            handler.close()
        output[name] = path.read_bytes()
    assert output["stdlib"] == output["safelog"]


def test_stream_handler_on_string_io_writes_stdlib_text() -> None:
    """StreamHandler on an io.StringIO writes what logging.StreamHandler does."""
    output = {}
    for name, handler_class in STREAM_HANDLER_CLASSES.items():
        stream = io.StringIO()
        handler = handler_class(stream)
        handler.setFormatter(FORMATTERS["percent"]())
        for record in make_records(UNICODE_TEXT):
            handler.handle(record)
        output[name] = stream.getvalue()
    assert output["stdlib"] == output["safelog"]


@pytest.mark.parametrize("kind", ["file", "stream"])
def test_unencodable_record_goes_to_handle_error(
    tmp_path: Path, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A record the encoding cannot write (strict latin-1, "✓") goes to
    handleError as with the stdlib, and nothing of it is written."""
    output, reported = {}, {}
    for name in ("stdlib", "safelog"):
        path = tmp_path / f"{name}.log"
        handler = handler_on_file(name, kind, path, "latin-1")
        capsys.readouterr()
        for record in make_records(UNICODE_TEXT)[:2]:
            handler.handle(record)
        reported[name] = error_reported(capsys.readouterr().err)
        close_with_stream(handler)
        output[name] = path.read_bytes()
    assert "UnicodeEncodeError" == reported["stdlib"]
    assert reported["stdlib"] == reported["safelog"]
    assert output["stdlib"] == output["safelog"]


# -- attributes and API ----------------------------------------------------------

FILE_ATTRIBUTES = ("baseFilename", "mode", "encoding", "errors", "delay", "terminator")
STREAM_ATTRIBUTES = ("name", "mode", "encoding", "errors")


def describe(handler: logging.StreamHandler[Any]) -> dict[str, Any]:
    """The public state of a handler and of its stream."""
    stream = handler.stream
    return {
        "handler": {a: getattr(handler, a, "<missing>") for a in FILE_ATTRIBUTES},
        "stream": None
        if stream is None
        else {a: getattr(stream, a, "<missing>") for a in STREAM_ATTRIBUTES},
        "repr": repr(handler),
        "level": handler.level,
    }


@pytest.mark.parametrize("delay", [False, True])
@pytest.mark.parametrize("mode", ["a", "w"])
@pytest.mark.parametrize(
    ("encoding", "errors"), [(None, None), ("utf-8", None), ("latin-1", "replace")]
)
def test_file_handler_has_stdlib_attributes(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    delay: bool,
    mode: str,
    encoding: str | None,
    errors: str | None,
) -> None:
    """baseFilename (absolute, from a relative pathlib.Path), mode, encoding,
    errors, delay, terminator, the stream's name, mode, encoding and errors,
    and repr are the stdlib's."""
    monkeypatch.chdir(tmp_path)
    described = {}
    for name, handler_class in HANDLER_CLASSES.items():
        handler = handler_class(
            Path("same.log"), mode=mode, encoding=encoding, delay=delay, errors=errors
        )
        handler.setLevel(logging.WARNING)
        described[name] = describe(handler)
        handler.close()
    assert described["stdlib"] == described["safelog"]


def test_stream_handler_has_stdlib_attributes() -> None:
    """StreamHandler() writes to the current sys.stderr and has the stdlib's
    terminator and repr."""
    described = {}
    for name, handler_class in STREAM_HANDLER_CLASSES.items():
        handler = handler_class()
        described[name] = (handler.stream is sys.stderr, describe(handler))
    assert described["stdlib"] == described["safelog"]


@pytest.mark.parametrize("kind", ["file", "stream"])
def test_set_stream_returns_old_stream(tmp_path: Path, kind: str) -> None:
    """setStream returns the stream it replaced, or None when given the
    stream already in use, as with the stdlib."""
    results = {}
    for name in ("stdlib", "safelog"):
        if kind == "file":
            handler: logging.StreamHandler[Any] = HANDLER_CLASSES[name](
                tmp_path / f"{name}.log"
            )
        else:
            handler = STREAM_HANDLER_CLASSES[name](io.StringIO())
        old, new = handler.stream, io.StringIO()
        results[name] = (
            handler.setStream(new) is old,
            handler.stream is new,
            handler.setStream(new),
        )
        old.close()
    assert (True, True, None) == results["stdlib"]
    assert results["stdlib"] == results["safelog"]


def test_handlers_are_instances_of_stdlib_classes(tmp_path: Path) -> None:
    """Code that checks isinstance against the stdlib classes accepts
    safelog's handlers."""
    file_handler = safelog.FileHandler(tmp_path / "x.log", delay=True)
    stream_handler = safelog.StreamHandler(io.StringIO())
    assert (True, True, True) == (
        isinstance(file_handler, logging.FileHandler),
        isinstance(file_handler, logging.StreamHandler),
        isinstance(file_handler, logging.Handler),
    )
    assert (True, False) == (
        isinstance(stream_handler, logging.StreamHandler),
        isinstance(stream_handler, logging.FileHandler),
    )


def test_delay_opens_file_at_first_record(tmp_path: Path) -> None:
    """With delay=True the file is created by the first record, not before,
    as with the stdlib; closing an unused delayed handler creates nothing."""
    states = {}
    for name, handler_class in HANDLER_CLASSES.items():
        path = tmp_path / f"{name}.log"
        unused = handler_class(tmp_path / f"{name}-unused.log", delay=True)
        unused.close()
        handler = handler_class(path, delay=True)
        before = (path.exists(), handler.stream)
        handler.handle(logging.makeLogRecord({"msg": "first"}))
        states[name] = (
            before,
            path.read_text(),
            (tmp_path / f"{name}-unused.log").exists(),
        )
        handler.close()
    assert ((False, None), "first\n", False) == states["stdlib"]
    assert states["stdlib"] == states["safelog"]


@pytest.mark.parametrize("delay", [False, True])
def test_file_handler_on_a_fifo_writes_as_stdlib(tmp_path: Path, delay: bool) -> None:
    """A FileHandler on a FIFO (no seek there) writes what the stdlib's
    writes (with UTF-16, no byte order mark: open() cannot tell() there)."""
    found = {}
    for name, handler_class in HANDLER_CLASSES.items():
        fifo = tmp_path / f"{name}.fifo"
        os.mkfifo(fifo)
        outcome = scenario.run_ok(
            f"""
            import logging, sys, threading
            sys.path[:0] = {sys.path!r}
            import safelog
            got = []
            def read():
                with open({str(fifo)!r}, "rb") as reader:
                    got.append(reader.read())
            reader = threading.Thread(target=read)
            reader.start()
            handler = {handler_class.__module__}.{handler_class.__qualname__}(
                {str(fifo)!r}, encoding="utf-16", delay={delay!r}
            )
            for message in ("one", "two"):
                handler.handle(logging.makeLogRecord({{"msg": message}}))
            handler.close()
            reader.join()
            print(got[0].hex())
            """,
            timeout=30,
        )
        found[name] = bytes.fromhex(outcome.stdout.strip())
    assert "one\ntwo\n".encode("utf-16")[2:] == found["stdlib"]  # no BOM
    assert found["stdlib"] == found["safelog"]


@pytest.mark.skipif(sys.version_info < (3, 10), reason="EncodingWarning is 3.10+")
def test_encoding_warning_points_at_the_caller(tmp_path: Path) -> None:
    """With -X warn_default_encoding, the EncodingWarning for a file handler
    made without an encoding points at the line that made it, as the
    standard handler's does."""
    outcome = scenario.run_ok(
        f"""
        import logging, logging.handlers, warnings
        import safelog
        warnings.simplefilter("always")
        classes = [
            logging.FileHandler, safelog.FileHandler, safelog.WatchedFileHandler,
            safelog.RotatingFileHandler, safelog.TimedRotatingFileHandler,
        ]
        for index, cls in enumerate(classes):
            with warnings.catch_warnings(record=True) as caught:
                handler = cls({str(tmp_path)!r} + f"/{{index}}.log")  # the line
            handler.close()
            for warning in caught:
                if warning.category is EncodingWarning:
                    print(cls.__name__, warning.filename, warning.lineno)
        """,
        env={"PYTHONWARNDEFAULTENCODING": "1"},
    )
    lines = outcome.stdout.splitlines()
    assert 5 == len(lines)
    assert {"<string> 11"} == {line.split(" ", 1)[1] for line in lines}


def test_file_handlers_on_dev_stdout_pipe() -> None:
    """Every safelog file handler on /dev/stdout, a pipe here (as in a
    container), writes every record, with delay or not, from dictConfig too;
    install() converts such standard handlers.  The standard handlers write
    the same, except RotatingFileHandler on 3.13.0, whose shouldRollover()
    calls tell() on the pipe and loses each record."""
    outcome = scenario.run_ok(
        """
        import logging, logging.config, logging.handlers, os, sys
        import safelog
        def make(cls, delay):
            if issubclass(cls, logging.handlers.RotatingFileHandler):
                return cls("/dev/stdout", maxBytes=100, backupCount=2, delay=delay)
            return cls("/dev/stdout", delay=delay)
        pairs = [
            (logging.FileHandler, safelog.FileHandler),
            (logging.handlers.WatchedFileHandler, safelog.WatchedFileHandler),
            (logging.handlers.RotatingFileHandler, safelog.RotatingFileHandler),
            (logging.handlers.TimedRotatingFileHandler,
             safelog.TimedRotatingFileHandler),
        ]
        for stdlib_class, safelog_class in pairs:
            for delay in (False, True):
                for cls in (stdlib_class, safelog_class):
                    handler = make(cls, delay)
                    who = cls.__module__.split(".")[0]
                    for number in range(3):
                        handler.handle(logging.makeLogRecord({
                            "msg": f"{who} {stdlib_class.__name__} {delay} {number}"
                        }))
                    handler.close()
        logging.config.dictConfig({
            "version": 1,
            "handlers": {"out": {"class": "safelog.RotatingFileHandler",
                                 "filename": "/dev/stdout", "maxBytes": 100}},
            "loggers": {"configured": {"handlers": ["out"]}},
        })
        logging.getLogger("configured").warning("from dictConfig")
        root = logging.getLogger()
        root.addHandler(logging.FileHandler("/dev/stdout"))
        safelog.install()
        print("installed", type(root.handlers[-1]).__module__, flush=True)
        root.warning("after install")
        """
    )
    lines = outcome.stdout.splitlines()
    names = ["FileHandler", "WatchedFileHandler", "RotatingFileHandler"]
    names.append("TimedRotatingFileHandler")
    expected = {
        who: [
            f"{who} {name} {delay} {number}"
            for name in names
            for delay in (False, True)
            for number in range(3)
        ]
        for who in ("safelog", "logging")
    }
    assert expected["safelog"] == [line for line in lines if line.startswith("safelog")]
    stdlib_lines = [line for line in lines if line.startswith("logging")]
    if "underlying stream is not seekable" in outcome.stderr:  # 3.13.0's
        expected["logging"] = [
            line for line in expected["logging"] if " RotatingFileHandler " not in line
        ]
    assert expected["logging"] == stdlib_lines
    assert ["from dictConfig", "installed safelog._handlers", "after install"] == [
        line for line in lines if not line.startswith(("safelog", "logging"))
    ]


def test_close_releases_the_descriptor(tmp_path: Path) -> None:
    """FileHandler.close closes the file descriptor it opened."""
    handler = safelog.FileHandler(tmp_path / "x.log")
    fd = handler.stream.fileno()
    handler.close()
    with pytest.raises(OSError):
        os.fstat(fd)


DICT_CONFIG = """
import logging, logging.config, sys

logging.config.dictConfig({{
    "version": 1,
    "formatters": {{"f": {{"format": "%(levelname)s %(name)s %(message)s"}}}},
    "handlers": {{
        "file": {{
            "class": "{prefix}.FileHandler", "filename": {path!r},
            "mode": "w", "encoding": "utf-8", "formatter": "f",
        }},
        "stderr": {{
            "class": "{prefix}.StreamHandler", "stream": "ext://sys.stderr",
            "formatter": "f",
        }},
    }},
    "root": {{"handlers": ["file", "stderr"], "level": "INFO"}},
}})
root = logging.getLogger()
logging.getLogger("configured").info("hello %s", "wörld")
print([f"{{type(h).__module__}}.{{type(h).__name__}}" for h in root.handlers])
print(root.handlers[1].stream is sys.stderr)
"""


def test_dict_config_builds_handlers(tmp_path: Path) -> None:
    """logging.config.dictConfig builds safelog.FileHandler and
    safelog.StreamHandler (with "ext://sys.stderr") by class name, and they
    write what the stdlib classes write."""
    outcomes = {}
    for prefix in ("logging", "safelog"):
        path = tmp_path / f"{prefix}.log"
        code = DICT_CONFIG.format(prefix=prefix, path=str(path))
        outcome = scenario.run_ok(code, env={"PYTHONIOENCODING": "utf-8"})
        outcomes[prefix] = (outcome.stdout, outcome.stderr, path.read_bytes())
    stdout, stderr, data = outcomes["safelog"]
    assert (
        "['safelog._handlers.FileHandler', 'safelog._handlers.StreamHandler']\nTrue\n"
        == stdout
    )
    assert (outcomes["logging"][1], outcomes["logging"][2]) == (stderr, data)
    assert b"INFO configured hello w\xc3\xb6rld\n" == data


# -- bad input: the same exception at the same moment ---------------------------


def error_reported(stderr: str) -> str | None:
    """The exception type named in a handleError report, or None."""
    if "--- Logging error ---" not in stderr:
        return None
    last_line = stderr.split("\nCall stack:")[0].splitlines()[-1]
    return last_line.split(":")[0].rsplit(".", 1)[-1]


def lifecycle(
    handler_class: type[logging.FileHandler],
    options: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
) -> tuple[str, str | None]:
    """Where constructing a handler and handling one record fails, and how:
    ("construction", type) or ("emit", type) for an exception raised to the
    caller, ("handleError", type) for one reported, or ("ok", None)."""
    capsys.readouterr()
    try:
        handler = handler_class(**options)
    except Exception as error:
        return "construction", type(error).__name__
    try:
        handler.handle(logging.makeLogRecord({"msg": UNICODE_TEXT}))
    except Exception as error:
        return "emit", type(error).__name__
    finally:
        handler.close()
    reported = error_reported(capsys.readouterr().err)
    return ("ok", None) if reported is None else ("handleError", reported)


@pytest.fixture
def bad_paths(tmp_path: Path) -> Iterator[dict[str, Path]]:
    """Paths that cannot be opened for writing, even by root."""
    (tmp_path / "a-file").write_text("")
    (tmp_path / "existing.log").write_text("")
    yield {
        "directory": tmp_path,
        "missing-directory": tmp_path / "missing" / "x.log",
        "file-as-directory": tmp_path / "a-file" / "x.log",
        "existing": tmp_path / "existing.log",
        "fine": tmp_path / "fine.log",
    }


BAD_INPUT = [
    ("directory", {}, "IsADirectoryError"),
    ("missing-directory", {}, "FileNotFoundError"),
    ("file-as-directory", {}, "NotADirectoryError"),
    ("existing", {"mode": "x"}, "FileExistsError"),
    ("fine", {"mode": "z"}, "ValueError"),
    ("fine", {"mode": "rw"}, "ValueError"),
    ("fine", {"encoding": "no-such-codec"}, "LookupError"),
]


@pytest.mark.parametrize(
    ("where", "options", "error"),
    BAD_INPUT,
    ids=[f"{where}-{options}" for where, options, _ in BAD_INPUT],
)
@pytest.mark.parametrize("delay", [False, True], ids=["open", "delay"])
def test_bad_input_fails_as_stdlib(
    bad_paths: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
    where: str,
    options: dict[str, Any],
    error: str,
    delay: bool,
) -> None:
    """A bad path, mode or encoding raises the stdlib's exception at the
    stdlib's moment: at construction, or with delay=True from the first
    record (raised to the caller, as logging.FileHandler.emit does)."""
    options = {"filename": bad_paths[where], "delay": delay, **options}
    expected = ("emit" if delay else "construction", error)
    assert expected == lifecycle(logging.FileHandler, options, capsys)
    assert expected == lifecycle(safelog.FileHandler, options, capsys)


@pytest.mark.parametrize(
    "options",
    [
        {"encoding": "ascii"},
        {"encoding": "ascii", "errors": "no-such-handler"},
        {"mode": "r"},
    ],
)
def test_unwritable_record_is_reported_as_stdlib(
    bad_paths: dict[str, Path], capsys: pytest.CaptureFixture[str], options: Any
) -> None:
    """A record that cannot be written (unencodable, unknown error handler, a
    file opened for reading) goes to handleError as with the stdlib."""
    bad_paths["fine"].write_text("")
    options = {"filename": bad_paths["fine"], **options}
    stdlib = lifecycle(logging.FileHandler, options, capsys)
    assert "handleError" == stdlib[0]
    assert stdlib == lifecycle(safelog.FileHandler, options, capsys)


def _counting_acquire(base: type[logging.StreamHandler[Any]]) -> Any:
    class Counting(base):  # type: ignore[valid-type,misc]
        acquired = 0

        def acquire(self) -> None:
            self.acquired += 1
            super().acquire()

    return Counting


def test_handle_takes_the_lock_as_stdlib() -> None:
    """A subclass's acquire() (an inter-process lock around each record,
    say) is called by handle() as many times as the standard handler calls
    it: through acquire() before 3.13, never from 3.13 on (handle() uses
    ``with self.lock`` there)."""
    counts = []
    for base in (logging.StreamHandler, safelog.StreamHandler):
        handler = _counting_acquire(base)(io.StringIO())
        handler.handle(make_records("x")[0])
        counts.append(handler.acquired)
    stdlib, ours = counts
    assert (2 if sys.version_info < (3, 13) else 0) == stdlib
    assert stdlib == ours


def _handle_without_lock(base: type[logging.StreamHandler[Any]]) -> str:
    class NoLock(base):  # type: ignore[valid-type,misc]
        def createLock(self) -> None:
            self.lock = None

    handler = NoLock(io.StringIO())
    try:
        handler.handle(make_records("x")[0])
    except Exception as error:
        return f"{type(error).__name__}: {error}"
    return repr(handler.stream.getvalue())


def test_handler_whose_create_lock_sets_none_behaves_as_stdlib() -> None:
    """A subclass whose createLock() sets no lock: the record is written
    unlocked before 3.13 and ``with None`` fails with TypeError from 3.13
    on, for safelog's handler as for the standard one."""
    stdlib = _handle_without_lock(logging.StreamHandler)
    if sys.version_info < (3, 13):
        assert "'plain x\\n'" == stdlib
    else:
        assert stdlib.startswith("TypeError")
    assert stdlib == _handle_without_lock(safelog.StreamHandler)


def test_handler_whose_create_lock_sets_none_has_none_in_a_child() -> None:
    """A subclass whose createLock() sets no lock has none in a forked
    child either, as with the standard handler (the child step gives
    fresh locks only to handlers that have one)."""
    outcome = scenario.run_ok(
        """
        import io, logging, os
        import safelog
        class NoLock(safelog.StreamHandler):
            def createLock(self):
                self.lock = None
        handler = NoLock(io.StringIO())
        pid = os.fork()
        if pid == 0:
            os._exit(0 if handler.lock is None else 1)
        _, status = os.waitpid(pid, 0)
        print(os.WEXITSTATUS(status))
        """,
        timeout=30,
    )
    assert "0" == outcome.stdout.strip()
