"""safelog handlers configured by class path, through ``logging.config``.

Every scenario runs in a child interpreter in a temporary directory, with a
hard timeout: it configures real files, logs, forks, and prints what it saw.
"""

from __future__ import annotations

import json
import logging
import logging.config
import threading
import time
from pathlib import Path

import pytest

import safelog
from scenario import run_ok

# dictConfig keys, beyond "class", for each handler safelog exports.  A class
# this checkout does not ship yet is skipped, never faked.
HANDLER_CASES: dict[str, dict[str, object]] = {
    "StreamHandler": {"stream": "ext://sys.stdout"},
    "FileHandler": {"filename": "app.log"},
    "WatchedFileHandler": {"filename": "app.log"},
    "RotatingFileHandler": {"filename": "app.log", "maxBytes": 1000, "backupCount": 2},
    "TimedRotatingFileHandler": {"filename": "app.log", "when": "D", "backupCount": 2},
    "QueueHandler": {"handlers": ["target"]},
    "SocketHandler": {"host": "127.0.0.1", "port": 0},
    "DatagramHandler": {"host": "127.0.0.1", "port": 0},
    "SysLogHandler": {"address": ["127.0.0.1", 0]},
    # Configured against a real rsyslogd in test_rfc5424.py.
    "RFC5424Handler": {"address": ["127.0.0.1", 0]},
}
FILE_HANDLERS = [
    "FileHandler",
    "WatchedFileHandler",
    "RotatingFileHandler",
    "TimedRotatingFileHandler",
]

# Logs in the parent's threads while the main thread forks; each child logs
# once, flushes safelog's queues (a raw fork child leaves through os._exit,
# where no exit hook runs) and leaves.  Prints the children's exit statuses.
FORK_AFTER_CONFIG = """
import logging, os, threading, time, warnings
import safelog
from safelog._harness import wait_for_children

warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*fork")
log = logging.getLogger("app")
stop = threading.Event()

def chatter(n):
    i = 0
    while not stop.is_set():
        log.warning("thread %d record %d", n, i)
        i += 1

threads = [threading.Thread(target=chatter, args=(n,)) for n in range(2)]
for thread in threads:
    thread.start()
children = []
for number in range(10):
    time.sleep(0.01)
    pid = os.fork()
    if pid == 0:
        log.warning("child %d", number)
        safelog.flush() if hasattr(safelog, "flush") else None
        os._exit(0)
    children.append(pid)
stop.set()
for thread in threads:
    thread.join()
codes = wait_for_children(dict.fromkeys(children, time.monotonic() + 10))
statuses = ["hung" if codes[pid] is None else codes[pid] for pid in children]
logging.shutdown()
print(statuses)
"""


def _shipped(name: str) -> type[logging.Handler]:
    found = getattr(safelog, name, None)
    if not isinstance(found, type):
        pytest.skip(f"safelog.{name} has not landed in this checkout")
    return found


def _dict_config(handler: dict[str, object], **extra: object) -> str:
    config = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": "%(name)s %(levelname)s %(message)s"}},
        "handlers": {"out": {"formatter": "plain", **handler}},
        "root": {"level": "DEBUG", "handlers": ["out"]},
        **extra,
    }
    return json.dumps(config)


def _records(text: str) -> list[str]:
    return [line for line in text.splitlines() if line]


def test_every_exported_handler_has_a_config_case() -> None:
    """Each handler class safelog exports is covered by the dictConfig tests."""
    exported = {
        name
        for name in safelog.__all__
        if isinstance(getattr(safelog, name), type)
        and issubclass(getattr(safelog, name), logging.Handler)
    }
    assert set() == exported - set(HANDLER_CASES)


@pytest.mark.parametrize("name", FILE_HANDLERS)
def test_dict_config_file_handler_writes_what_the_stdlib_writes(
    name: str, tmp_path: Path
) -> None:
    """ "class": "safelog.X" writes the bytes "class": "logging.X" writes."""
    _shipped(name)
    stdlib_module = "logging" if name == "FileHandler" else "logging.handlers"
    outputs = []
    for class_path in (f"{stdlib_module}.{name}", f"safelog.{name}"):
        workdir = tmp_path / class_path
        workdir.mkdir()
        config = _dict_config({"class": class_path, **HANDLER_CASES[name]})
        run_ok(
            f"""
            import json, logging, logging.config, logging.handlers
            import safelog
            logging.config.dictConfig(json.loads({config!r}))
            handler = logging.getHandlerByName("out") if hasattr(
                logging, "getHandlerByName") else logging.getLogger().handlers[0]
            assert type(handler).__module__.split(".")[0] == {class_path!r}.split(
                ".")[0], type(handler)
            logging.getLogger("app").info("hello %s", "world")
            logging.getLogger("app.db").error("caf\\u00e9")
            logging.shutdown()
            """,
            cwd=workdir,
        )
        outputs.append((workdir / "app.log").read_bytes())
    expected, actual = outputs
    assert b"app INFO hello world\napp.db ERROR caf\xc3\xa9\n" == expected
    assert expected == actual


@pytest.mark.parametrize("name", FILE_HANDLERS)
def test_dict_configured_file_handler_survives_fork_with_threads(
    name: str, tmp_path: Path
) -> None:
    """A child forked while threads log through a dictConfig-built handler
    logs once and exits; no record is torn."""
    _shipped(name)
    case = dict(HANDLER_CASES[name])
    case.pop("maxBytes", None)  # one file: every record must be in it
    config = _dict_config({"class": f"safelog.{name}", **case})
    outcome = run_ok(
        f"import json, logging.config\n"
        f"logging.config.dictConfig(json.loads({config!r}))\n" + FORK_AFTER_CONFIG,
        cwd=tmp_path,
    )
    assert [0] * 10 == json.loads(outcome.stdout)
    lines = _records((tmp_path / "app.log").read_text())
    children = [line for line in lines if line.startswith("app WARNING child")]
    assert {f"app WARNING child {n}" for n in range(10)} == set(children)
    assert len(children) == len(set(children))
    torn = [line for line in lines if not line.startswith("app WARNING ")]
    assert [] == torn


def test_dict_config_stream_handler_on_stdout(tmp_path: Path) -> None:
    """ "class": "safelog.StreamHandler" with "stream": "ext://sys.stdout" writes
    there, and forked children log through it."""
    config = _dict_config(
        {"class": "safelog.StreamHandler", "stream": "ext://sys.stdout"}
    )
    outcome = run_ok(
        f"import json, logging.config\n"
        f"logging.config.dictConfig(json.loads({config!r}))\n"
        + FORK_AFTER_CONFIG.replace("print(statuses)", "print('STATUSES', statuses)"),
        cwd=tmp_path,
    )
    lines = _records(outcome.stdout)
    assert "STATUSES [0, 0, 0, 0, 0, 0, 0, 0, 0, 0]" == lines[-1]
    children = {line for line in lines if line.startswith("app WARNING child")}
    assert {f"app WARNING child {n}" for n in range(10)} == children


def test_dict_config_queue_handler_with_named_target(tmp_path: Path) -> None:
    """ "class": "safelog.QueueHandler" with "handlers": ["target"] writes
    through the named target, in the parent and in forked children."""
    _shipped("QueueHandler")
    config = _dict_config(
        {"class": "safelog.QueueHandler", "handlers": ["target"]},
    )
    loaded = json.loads(config)
    loaded["handlers"]["target"] = {
        "class": "safelog.FileHandler",
        "filename": "app.log",
        "formatter": "plain",
    }
    del loaded["handlers"]["out"]["formatter"]
    outcome = run_ok(
        f"import json, logging.config\n"
        f"logging.config.dictConfig(json.loads({json.dumps(loaded)!r}))\n"
        + FORK_AFTER_CONFIG,
        cwd=tmp_path,
    )
    assert [0] * 10 == json.loads(outcome.stdout)
    lines = _records((tmp_path / "app.log").read_text())
    children = {line for line in lines if line.startswith("app WARNING child")}
    assert {f"app WARNING child {n}" for n in range(10)} == children
    assert len(lines) == len(set(lines))


@pytest.mark.parametrize("queue_name", ["aq", "zq"])
def test_configuring_again_writes_what_the_queue_holds(
    tmp_path: Path, queue_name: str
) -> None:
    """A second dictConfig closes the old handlers through logging.shutdown(),
    newest first.  dictConfig builds them in name order, so a queue handler
    named before its target ("aq" < "file") is older; its target is still
    open when it writes what it holds, and every record is in the file."""

    class Slow(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            time.sleep(0.0005)  # keeps records queued until the second call
            return True

    path = tmp_path / "app.log"
    logging.config.dictConfig(
        {
            "version": 1,
            "filters": {"slow": {"()": Slow}},
            "handlers": {
                queue_name: {"class": "safelog.QueueHandler", "handlers": ["file"]},
                "file": {
                    "class": "safelog.FileHandler",
                    "filename": str(path),
                    "mode": "w",
                    "filters": ["slow"],
                },
            },
            # One logger per case: on 3.9 a logger that an earlier
            # dictConfig disabled stays disabled when configured again.
            "loggers": {f"again.{queue_name}": {"handlers": [queue_name]}},
        }
    )
    log = logging.getLogger(f"again.{queue_name}")
    log.setLevel(logging.INFO)
    for i in range(300):
        log.info("record %d", i)
    logging.config.dictConfig({"version": 1, "incremental": False})
    assert [f"record {i}" for i in range(300)] == path.read_text().splitlines()


def test_configuring_again_closes_a_chain_of_queues_front_first() -> None:
    """A chain a_front -> b_mid -> out, where each queue binds its target on
    its first record: a second dictConfig closes a_front, then b_mid, then
    out, so a record still on its way through the chain reaches an open
    target."""
    seen: list[tuple[str, bool]] = []
    gate = threading.Event()

    class Out(logging.Handler):
        closed = False

        def emit(self, record: logging.LogRecord) -> None:
            seen.append((record.getMessage(), self.closed))

        def close(self) -> None:
            self.closed = True
            super().close()

    class Slow(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            if record.getMessage() == "late":
                gate.wait(0.3)  # keeps it between a_front and b_mid
            return True

    logging.config.dictConfig(
        {
            "version": 1,
            "filters": {"slow": {"()": Slow}},
            "handlers": {
                "a_front": {"class": "safelog.QueueHandler", "handlers": ["b_mid"]},
                "b_mid": {
                    "class": "safelog.QueueHandler",
                    "handlers": ["out"],
                    "filters": ["slow"],
                },
                "out": {"()": Out},
            },
            "loggers": {"chain": {"handlers": ["a_front"], "level": "INFO"}},
        }
    )
    log = logging.getLogger("chain")
    log.info("first")
    safelog.flush()  # both queues have bound their targets
    log.info("late")
    time.sleep(0.05)
    logging.config.dictConfig({"version": 1, "incremental": False})
    assert [("first", False), ("late", False)] == seen


def test_shutdown_order_follows_targets_given_as_objects() -> None:
    """A queue handler given another queue handler as a target object stays
    after it in the list logging.shutdown() closes newest first, when that
    one moves after a target it names (made after both)."""
    middle = safelog.QueueHandler(["order-out"])
    front = safelog.QueueHandler([middle])
    out = logging.NullHandler()
    out.set_name("order-out")
    log = logging.getLogger("order")
    log.propagate = False
    log.addHandler(front)
    try:
        log.warning("binds the name")
        safelog.flush()
        newest_first = [ref() for ref in reversed(logging._handlerList)]  # type: ignore[attr-defined]
        positions = [newest_first.index(h) for h in (front, middle, out)]
        assert sorted(positions) == positions  # closed front, middle, out
    finally:
        log.removeHandler(front)
        for handler in (front, middle, out):
            handler.close()


def test_dict_config_network_handlers_send_to_a_local_server(tmp_path: Path) -> None:
    """safelog.DatagramHandler and safelog.SysLogHandler, built from dictConfig
    (address given as a JSON list), send to a local UDP socket."""
    _shipped("DatagramHandler")
    _shipped("SysLogHandler")
    outcome = run_ok(
        """
        import logging, logging.config, pickle, socket
        server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        server.bind(("127.0.0.1", 0))
        server.settimeout(10)
        port = server.getsockname()[1]
        logging.config.dictConfig({
            "version": 1,
            "handlers": {
                "datagram": {"class": "safelog.DatagramHandler",
                             "host": "127.0.0.1", "port": port},
                "syslog": {"class": "safelog.SysLogHandler",
                           "address": ["127.0.0.1", port]},
            },
            "root": {"level": "INFO", "handlers": ["datagram", "syslog"]},
        })
        logging.getLogger("app").warning("over the wire")
        received = [server.recv(65536) for _ in range(2)]
        pickled = next(data for data in received if not data.startswith(b"<"))
        record = pickle.loads(pickled[4:])
        print(record["msg"], [data for data in received if data.startswith(b"<")])
        logging.shutdown()
        """,
        cwd=tmp_path,
    )
    assert "over the wire [b'<12>over the wire\\x00']\n" == outcome.stdout


def test_dict_config_socket_handler_connects_to_a_local_server(tmp_path: Path) -> None:
    """safelog.SocketHandler built from dictConfig sends to a TCP server."""
    _shipped("SocketHandler")
    outcome = run_ok(
        """
        import logging, logging.config, pickle, socket, struct
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.settimeout(10)
        logging.config.dictConfig({
            "version": 1,
            "handlers": {"tcp": {"class": "safelog.SocketHandler",
                                 "host": "127.0.0.1",
                                 "port": server.getsockname()[1]}},
            "root": {"level": "INFO", "handlers": ["tcp"]},
        })
        logging.getLogger("app").warning("over tcp")
        connection, _ = server.accept()
        connection.settimeout(10)
        data = b""
        while len(data) < 4 or len(data) < 4 + struct.unpack(">L", data[:4])[0]:
            data += connection.recv(65536)
        print(pickle.loads(data[4:])["msg"])
        logging.shutdown()
        """,
        cwd=tmp_path,
    )
    assert "over tcp\n" == outcome.stdout


INI = """\
[loggers]
keys=root,app

[handlers]
keys=file,console{extra_keys}

[formatters]
keys=plain

[logger_root]
level=DEBUG
handlers={root_handlers}

[logger_app]
level=DEBUG
handlers=
qualname=app

[handler_file]
class=safelog.FileHandler
formatter=plain
args=('app.log',)

[handler_console]
class=safelog.StreamHandler
formatter=plain
args=(sys.stdout,)
{extra_sections}
[formatter_plain]
format=%(name)s %(levelname)s %(message)s
"""


def test_file_config_builds_safelog_handlers(tmp_path: Path) -> None:
    """class=safelog.FileHandler and class=safelog.StreamHandler in an .ini
    write the records, and forked children log through them."""
    ini = INI.format(extra_keys="", root_handlers="file,console", extra_sections="")
    (tmp_path / "logging.ini").write_text(ini)
    outcome = run_ok(
        "import logging.config\n"
        "logging.config.fileConfig('logging.ini')\n"
        + FORK_AFTER_CONFIG.replace("print(statuses)", "print('STATUSES', statuses)"),
        cwd=tmp_path,
    )
    assert "STATUSES [0, 0, 0, 0, 0, 0, 0, 0, 0, 0]" == _records(outcome.stdout)[-1]
    for text in (outcome.stdout, (tmp_path / "app.log").read_text()):
        children = {line for line in text.splitlines() if "WARNING child" in line}
        assert {f"app WARNING child {n}" for n in range(10)} == children


def test_file_config_queue_handler_with_named_target(tmp_path: Path) -> None:
    """class=safelog.QueueHandler with args=(['file'],) in an .ini writes
    through the handler named file, which no logger uses: the queue handler
    holds it from its construction (logging's registry holds it weakly)."""
    _shipped("QueueHandler")
    ini = INI.format(
        extra_keys=",queue",
        root_handlers="queue",
        extra_sections="\n[handler_queue]\nclass=safelog.QueueHandler\n"
        "args=(['file'],)\n",
    )
    (tmp_path / "logging.ini").write_text(ini)
    outcome = run_ok(
        "import logging.config\n"
        "logging.config.fileConfig('logging.ini')\n" + FORK_AFTER_CONFIG,
        cwd=tmp_path,
    )
    assert [0] * 10 == json.loads(outcome.stdout)
    lines = _records((tmp_path / "app.log").read_text())
    children = {line for line in lines if line.startswith("app WARNING child")}
    assert {f"app WARNING child {n}" for n in range(10)} == children


# Configures "out" at DEBUG, then changes its level with incremental=True,
# and prints what reached the file and whether the handler is the same object.
INCREMENTAL = """
import logging, logging.config
import safelog
base = {{
    "version": 1,
    "handlers": {{"out": {{"class": {class_path!r}, "filename": "app.log",
                         "level": "DEBUG"}}}},
    "loggers": {{"app": {{"level": "DEBUG", "handlers": ["out"]}}}},
}}
logging.config.dictConfig(base)
before = logging.getLogger("app").handlers[0]
logging.getLogger("app").info("before")
logging.config.dictConfig({{
    "version": 1,
    "incremental": True,
    "handlers": {{"out": {{"level": "ERROR"}}}},
    "loggers": {{"app": {{"level": "INFO"}}}},
}})
logging.getLogger("app").info("dropped by the handler level")
logging.getLogger("app").error("after")
print(logging.getLogger("app").handlers[0] is before, before.level,
      logging.getLogger("app").level)
logging.shutdown()
print(open("app.log").read().split())
"""


def test_incremental_config_behaves_as_with_the_stdlib(tmp_path: Path) -> None:
    """incremental=True changes a safelog handler's level in place, exactly
    as it changes a logging.FileHandler's."""
    outputs = []
    for class_path in ("logging.FileHandler", "safelog.FileHandler"):
        workdir = tmp_path / class_path
        workdir.mkdir()
        code = INCREMENTAL.format(class_path=class_path)
        outputs.append(run_ok(code, cwd=workdir).stdout)
    expected, actual = outputs
    assert "True 40 20\n['before', 'after']\n" == expected
    assert expected == actual


# A logger made before configuration, then dictConfig with or without
# disable_existing_loggers; prints whether it was disabled and what reached
# the file.
DISABLE_EXISTING = """
import logging, logging.config
old = logging.getLogger("old")
logging.config.dictConfig({{
    "version": 1,
    "disable_existing_loggers": {disable},
    "handlers": {{"out": {{"class": {class_path!r}, "filename": "app.log"}}}},
    "root": {{"level": "INFO", "handlers": ["out"]}},
}})
old.warning("from old")
logging.getLogger("new").warning("from new")
logging.shutdown()
print(old.disabled, open("app.log").read().split())
"""


@pytest.mark.parametrize("disable", [True, False])
def test_disable_existing_loggers_behaves_as_with_the_stdlib(
    disable: bool, tmp_path: Path
) -> None:
    """disable_existing_loggers disables an earlier logger, or keeps it, as
    it does with logging.FileHandler."""
    outputs = []
    for class_path in ("logging.FileHandler", "safelog.FileHandler"):
        workdir = tmp_path / class_path
        workdir.mkdir()
        code = DISABLE_EXISTING.format(disable=disable, class_path=class_path)
        outputs.append(run_ok(code, cwd=workdir).stdout)
    expected, actual = outputs
    if disable:
        assert "True ['from', 'new']\n" == expected
    else:
        assert "False ['from', 'old', 'from', 'new']\n" == expected
    assert expected == actual


# Runs dictConfig on a broken configuration; prints the error and its cause.
CONFIG_ERROR = """
import json, logging.config
try:
    logging.config.dictConfig(json.loads({config!r}))
except ValueError as error:
    print(error)
    print(type(error.__cause__).__name__, error.__cause__)
else:
    print("configured")
"""


def _config_error(handlers: dict[str, object], tmp_path: Path) -> list[str]:
    config = json.dumps({"version": 1, "handlers": handlers})
    outcome = run_ok(CONFIG_ERROR.format(config=config), cwd=tmp_path)
    return outcome.stdout.splitlines()


def test_bad_file_path_fails_as_with_the_stdlib(tmp_path: Path) -> None:
    """A file in a missing directory fails dictConfig with the stdlib's error."""
    errors = [
        _config_error(
            {"file": {"class": class_path, "filename": "missing/app.log"}}, tmp_path
        )
        for class_path in ("logging.FileHandler", "safelog.FileHandler")
    ]
    expected, actual = errors
    assert "Unable to configure handler 'file'" == expected[0]
    assert expected == actual


def test_bad_overflow_names_the_handler_and_the_value(tmp_path: Path) -> None:
    """An overflow policy that does not exist fails dictConfig, naming the
    handler and the bad value."""
    _shipped("QueueHandler")
    lines = _config_error(
        {
            "target": {"class": "safelog.StreamHandler"},
            "queue": {
                "class": "safelog.QueueHandler",
                "handlers": ["target"],
                "overflow": "explode",
            },
        },
        tmp_path,
    )
    assert [
        "Unable to configure handler 'queue'",
        "ValueError overflow must be 'block', 'drop_new' or 'drop_old', got 'explode'",
    ] == lines


def test_unknown_target_name_fails_naming_the_handler_and_the_name(
    tmp_path: Path,
) -> None:
    """A queue handler whose target name is not configured fails dictConfig,
    naming the queue handler and the missing name."""
    _shipped("QueueHandler")
    lines = _config_error(
        {"queue": {"class": "safelog.QueueHandler", "handlers": ["nosuch"]}},
        tmp_path,
    )
    assert "Unable to configure handler 'queue'" == lines[0]
    assert "'nosuch'" in lines[1]
    assert (
        "ValueError unknown target handler 'nosuch': this configuration's "
        "handlers are 'queue'"
    ) == lines[1]


def test_cycle_between_queue_handlers_fails_naming_a_handler(tmp_path: Path) -> None:
    """Two queue handlers that target each other fail dictConfig, naming a
    handler of the cycle and the word cycle."""
    _shipped("QueueHandler")
    lines = _config_error(
        {
            "a": {"class": "safelog.QueueHandler", "handlers": ["b"]},
            "b": {"class": "safelog.QueueHandler", "handlers": ["a"]},
        },
        tmp_path,
    )
    assert lines[0] in (
        "Unable to configure handler 'a'",
        "Unable to configure handler 'b'",
    )
    assert "cycle" in lines[1]


@pytest.mark.parametrize(
    ("handlers", "expected"),
    [
        (
            {"q": {"class": "safelog.QueueHandler", "handlers": ["q"]}},
            ["Unable to configure handler 'q'", "ValueError {} 'q' -> 'q'"],
        ),
        (
            {
                "c": {"()": "safelog.QueueHandler", "handlers": ["a"]},
                "b": {"class": "safelog.QueueHandler", "handlers": ["c"]},
                "a": {"class": "safelog.QueueHandler", "handlers": ["file", "b"]},
                "file": {"class": "logging.NullHandler"},
            },
            [
                "Unable to configure handler 'a'",
                "ValueError {} 'a' -> 'b' -> 'c' -> 'a'",
            ],
        ),
    ],
    ids=["itself", "three-through-a-factory-entry"],
)
def test_longer_cycles_fail_with_the_path(
    handlers: dict[str, object], expected: list[str], tmp_path: Path
) -> None:
    """A queue handler naming itself, and a cycle of three (one entry built
    with "()"), fail dictConfig with the whole path of names."""
    _shipped("QueueHandler")
    lines = _config_error(handlers, tmp_path)
    assert [expected[0], expected[1].format("target handlers form a cycle:")] == lines


# Two queue handlers in a chain, outer -> inner -> file, where the name order
# decides which dictConfig builds first; prints what reached the file and the
# outer handler's level (kept, as nothing is built twice).
CHAIN = """
import io, logging, logging.config
import safelog
logging.config.dictConfig({{
    "version": 1,
    "handlers": {{
        {outer!r}: {{"class": "safelog.QueueHandler", "handlers": [{inner!r}],
                    "level": "WARNING"}},
        {inner!r}: {{"class": "safelog.QueueHandler", "handlers": ["file"]}},
        "file": {{"class": "safelog.FileHandler", "filename": "app.log"}},
    }},
    "root": {{"level": "INFO", "handlers": [{outer!r}]}},
}})
import gc; gc.collect()
logging.info("below the outer handler's level")
logging.warning("through both")
safelog.flush()
safelog.flush()
print(logging.getLogger().handlers[0].level, open("app.log").read().split())
"""


@pytest.mark.parametrize(
    ("outer", "inner"), [("a_outer", "b_inner"), ("b_outer", "a_inner")]
)
def test_chain_of_queue_handlers_in_either_name_order(
    outer: str, inner: str, tmp_path: Path
) -> None:
    """A queue handler targeting a queue handler is no cycle: dictConfig
    builds the chain whichever of the two it builds first."""
    _shipped("QueueHandler")
    outcome = run_ok(CHAIN.format(outer=outer, inner=inner), cwd=tmp_path)
    assert "30 ['through', 'both']\n" == outcome.stdout


def test_file_config_target_listed_after_the_queue_handler_is_reported(
    tmp_path: Path,
) -> None:
    """fileConfig builds handlers in keys= order: a target only the queue
    handler names, listed after it, is gone before it can be found, and the
    report says to list it first (the documented limit)."""
    _shipped("QueueHandler")
    ini = INI.format(
        extra_keys="",
        root_handlers="queue",
        extra_sections="\n[handler_queue]\nclass=safelog.QueueHandler\n"
        "args=(['file'],)\n",
    ).replace("keys=file,console", "keys=queue,file,console")
    (tmp_path / "logging.ini").write_text(ini)
    outcome = run_ok(
        """
        import logging, logging.config
        logging.config.fileConfig("logging.ini")
        logging.getLogger("app").warning("lost")
        logging.shutdown()
        """,
        cwd=tmp_path,
    )
    assert "" == (tmp_path / "app.log").read_text()
    assert (
        "no handler named 'file' exists; records go to the other targets until "
        "it does (fileConfig: list it before the queue handler in [handlers] keys)"
    ) in outcome.stderr


def test_stdlib_unknown_class_error_is_unchanged(tmp_path: Path) -> None:
    """A misspelt safelog class fails as any misspelt class does."""
    lines = _config_error({"out": {"class": "safelog.FileHandlr"}}, tmp_path)
    assert "Unable to configure handler 'out'" == lines[0]
    assert lines[1].startswith("ValueError Cannot resolve 'safelog.FileHandlr'")
