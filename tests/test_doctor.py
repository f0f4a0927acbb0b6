"""``python -m safelog doctor``: verdicts, --fix, messages, exit status.

Each test runs the real command in a child interpreter with a hard timeout,
in a temporary directory holding the configuration under test.
"""

from __future__ import annotations

import ast
import json
import logging
import logging.config
import socket
from pathlib import Path

import pytest

import scenario
from safelog import _replacements
from safelog._doctor import (
    Finding,
    check_dict_config,
    check_ini_config,
    judge_class,
    summary,
)

FILE_HAZARD = _replacements.replacement_for(__import__("logging").FileHandler)
EXAMPLE = {
    "version": 1,
    "handlers": {
        "file": {"class": "logging.FileHandler", "filename": "app.log"},
        "queue": {"class": "logging.handlers.QueueHandler", "handlers": ["file"]},
    },
    "root": {"level": "INFO", "handlers": ["queue"]},
}


def doctor(*args: str, cwd: Path, timeout: float = 60.0) -> scenario.Outcome:
    """Run ``python -m safelog doctor ARGS`` in ``cwd``; fail on a hang."""
    outcome = scenario.run(
        "import runpy, sys; sys.argv[0] = 'python -m safelog'; "
        "runpy.run_module('safelog', run_name='__main__')",
        args=("doctor", *args),
        cwd=cwd,
        timeout=timeout,
    )
    if outcome.hung:
        pytest.fail(f"doctor hung: {outcome.describe()}", pytrace=False)
    return outcome


def _hazard(stdlib_path: str) -> str:
    for replacement in _replacements.REPLACEMENTS:
        if replacement.stdlib_path == stdlib_path:
            return replacement.hazard
    raise AssertionError(stdlib_path)


def test_example_config_names_both_hazards_and_exits_1(tmp_path: Path) -> None:
    """A logging.FileHandler and a stdlib QueueHandler: one line each naming
    its hazard and its replacement, and exit status 1."""
    (tmp_path / "logging.json").write_text(json.dumps(EXAMPLE))
    outcome = doctor("logging.json", cwd=tmp_path)
    assert 1 == outcome.returncode, outcome.describe()
    assert [
        "file: NOT fork-safe: logging.FileHandler: "
        + _hazard("logging.FileHandler")
        + "; use safelog.FileHandler",
        "queue: NOT fork-safe: logging.handlers.QueueHandler: "
        + _hazard("logging.handlers.QueueHandler")
        + "; use safelog.QueueHandler",
        "2 of 2 handlers are not fork-safe",
    ] == outcome.stdout.splitlines()


def test_fix_output_is_fork_safe_and_configures(tmp_path: Path) -> None:
    """--fix prints a configuration on which the doctor exits 0, and which
    dictConfig builds and writes through."""
    (tmp_path / "logging.json").write_text(json.dumps(EXAMPLE))
    fixed = doctor("--fix", "logging.json", cwd=tmp_path)
    assert 0 == fixed.returncode, fixed.describe()
    converted = json.loads(fixed.stdout)
    assert {
        "file": {"class": "safelog.FileHandler", "filename": "app.log"},
        "queue": {"class": "safelog.QueueHandler", "handlers": ["file"]},
    } == converted["handlers"]
    (tmp_path / "fixed.json").write_text(fixed.stdout)
    again = doctor("fixed.json", cwd=tmp_path)
    assert 0 == again.returncode, again.describe()
    assert "all 2 handlers are fork-safe" == again.stdout.splitlines()[-1]
    scenario.run_ok(
        """
        import json, logging, logging.config
        logging.config.dictConfig(json.load(open("fixed.json")))
        logging.getLogger("app").warning("converted")
        logging.shutdown()
        """,
        cwd=tmp_path,
    )
    assert "converted\n" == (tmp_path / "app.log").read_text()


def test_fix_names_every_handler_it_leaves_unsafe(tmp_path: Path) -> None:
    """--fix exits 1 only with a reason on standard error: also for a queue
    it converted whose target is not in the configuration."""
    config = {
        "version": 1,
        "handlers": {
            "queue": {"class": "logging.handlers.QueueHandler", "handlers": ["fiel"]},
        },
        "root": {"handlers": ["queue"]},
    }
    (tmp_path / "typo.json").write_text(json.dumps(config))
    outcome = doctor("typo.json", "--fix", cwd=tmp_path)
    assert 1 == outcome.returncode, outcome.describe()
    assert "queue: NOT fork-safe" in outcome.stderr
    assert "'fiel'" in outcome.stderr


def test_fix_drops_the_stdlib_queue_keys(tmp_path: Path) -> None:
    """--fix drops "queue", "listener" and "respect_handler_level", which
    safelog.QueueHandler owns itself, and keeps level and formatter."""
    config = {
        "version": 1,
        "handlers": {
            "out": {"class": "logging.StreamHandler"},
            "queue": {
                "class": "logging.handlers.QueueHandler",
                "handlers": ["out"],
                "queue": {"()": "queue.Queue", "maxsize": 100},
                "respect_handler_level": True,
                "level": "INFO",
            },
        },
    }
    (tmp_path / "logging.json").write_text(json.dumps(config))
    fixed = doctor("--fix", "logging.json", cwd=tmp_path)
    assert 0 == fixed.returncode, fixed.describe()
    assert {
        "class": "safelog.QueueHandler",
        "handlers": ["out"],
        "level": "INFO",
    } == json.loads(fixed.stdout)["handlers"]["queue"]


def test_queue_handler_without_named_targets_is_not_converted(tmp_path: Path) -> None:
    """A stdlib QueueHandler built around a queue object (its listener made in
    code) stays as it is; --fix says why and exits 1."""
    config = {
        "version": 1,
        "handlers": {
            "queue": {"class": "logging.handlers.QueueHandler", "queue": "ext://x.q"}
        },
    }
    (tmp_path / "logging.json").write_text(json.dumps(config))
    fixed = doctor("--fix", "logging.json", cwd=tmp_path)
    assert 1 == fixed.returncode, fixed.describe()
    assert config == json.loads(fixed.stdout)
    assert "queue: not converted: " in fixed.stderr


INI = """\
# Our logging.
[loggers]
keys=root

[handlers]
keys=file,console

[formatters]
keys=

[logger_root]
level=INFO
handlers=file,console

[handler_file]
class = FileHandler
args=('app.log',)

[handler_console]
class=safelog.StreamHandler
args=(sys.stderr,)
"""


def test_ini_config_and_its_fix(tmp_path: Path) -> None:
    """An .ini naming FileHandler (fileConfig's short form) exits 1; --fix
    converts that line only, and fileConfig builds the result."""
    (tmp_path / "logging.ini").write_text(INI)
    outcome = doctor("logging.ini", cwd=tmp_path)
    assert 1 == outcome.returncode, outcome.describe()
    assert [
        "file: NOT fork-safe: logging.FileHandler: "
        + _hazard("logging.FileHandler")
        + "; use safelog.FileHandler",
        "console: fork-safe: safelog.StreamHandler: a safelog handler: a forked "
        "child gets fresh locks and never writes what the parent will write",
        "1 of 2 handlers is not fork-safe",
    ] == outcome.stdout.splitlines()
    fixed = doctor("--fix", "logging.ini", cwd=tmp_path)
    assert 0 == fixed.returncode, fixed.describe()
    assert INI.replace("class = FileHandler", "class = safelog.FileHandler") == (
        fixed.stdout
    )
    (tmp_path / "fixed.ini").write_text(fixed.stdout)
    assert 0 == doctor("fixed.ini", cwd=tmp_path).returncode
    scenario.run_ok(
        """
        import logging, logging.config
        logging.config.fileConfig("fixed.ini")
        logging.getLogger().warning("from ini")
        logging.shutdown()
        """,
        cwd=tmp_path,
    )
    assert "from ini\n" == (tmp_path / "app.log").read_text()


def test_module_attribute_config(tmp_path: Path) -> None:
    """CONFIG as module:attribute reads the dict from an importable module in
    the current directory, objects in it included; --fix prints it as JSON."""
    (tmp_path / "settings.py").write_text(
        "import sys\n"
        "LOGGING = {'version': 1, 'handlers': {'err': "
        "{'class': 'logging.StreamHandler', 'stream': sys.stderr}}}\n"
    )
    outcome = doctor("settings:LOGGING", cwd=tmp_path)
    assert 1 == outcome.returncode, outcome.describe()
    assert "1 of 1 handler is not fork-safe" == outcome.stdout.splitlines()[-1]
    fixed = doctor("--fix", "settings:LOGGING", cwd=tmp_path)
    assert 0 == fixed.returncode, fixed.describe()
    assert {
        "err": {"class": "safelog.StreamHandler", "stream": "ext://sys.stderr"}
    } == json.loads(fixed.stdout)["handlers"]


def test_import_inspects_the_live_configuration(tmp_path: Path) -> None:
    """--import MODULE imports it and judges the handlers on its loggers,
    including the listener targets of a stdlib QueueHandler."""
    (tmp_path / "app.py").write_text(
        "import logging, logging.handlers, queue\n"
        "logging.basicConfig(filename='app.log')\n"
        "q = queue.Queue()\n"
        "target = logging.StreamHandler()\n"
        "handler = logging.handlers.QueueHandler(q)\n"
        "handler.listener = logging.handlers.QueueListener(q, target)\n"
        "logging.getLogger('worker').addHandler(handler)\n"
    )
    outcome = doctor("--import", "app", cwd=tmp_path)
    assert 1 == outcome.returncode, outcome.describe()
    names = [line.split(": ")[:3] for line in outcome.stdout.splitlines()[:-1]]
    assert [
        ["root[0]", "NOT fork-safe", "logging.FileHandler"],
        ["worker[0]", "NOT fork-safe", "logging.handlers.QueueHandler"],
        ["worker[0]->target[0]", "NOT fork-safe", "logging.StreamHandler"],
    ] == names


def test_import_judges_a_handler_whose_place_reads_like_another_name(
    tmp_path: Path,
) -> None:
    """--import judges every handler even when one is named like the place
    of another ("app[0]"): neither hides the other."""
    (tmp_path / "app.py").write_text(
        "import logging, safelog\n"
        "unsafe = logging.FileHandler('app.log', delay=True)\n"
        "unsafe.set_name('app[0]')\n"
        "logging.getLogger().addHandler(unsafe)\n"
        "logging.getLogger('app').addHandler(safelog.StreamHandler())\n"
    )
    outcome = doctor("--import", "app", cwd=tmp_path)
    assert 1 == outcome.returncode, outcome.describe()
    names = [line.split(": ")[:3] for line in outcome.stdout.splitlines()[:-1]]
    assert [
        ["app[0]", "NOT fork-safe", "logging.FileHandler"],
        ["app[0]#2", "fork-safe", "safelog.StreamHandler"],
    ] == sorted(names)


def test_unknown_and_subclassed_handlers_are_not_passed(tmp_path: Path) -> None:
    """A class that cannot be imported, and a subclass of a stdlib handler,
    are reported as not fork-safe, without a replacement."""
    (tmp_path / "mine.py").write_text(
        "import logging\nclass Mine(logging.FileHandler): pass\n"
    )
    config = {
        "version": 1,
        "handlers": {
            "missing": {"class": "nowhere.Handler"},
            "mine": {"class": "mine.Mine", "filename": "x.log"},
            "null": {"class": "logging.NullHandler"},
        },
    }
    (tmp_path / "logging.json").write_text(json.dumps(config))
    outcome = doctor("logging.json", cwd=tmp_path)
    assert 1 == outcome.returncode, outcome.describe()
    lines = outcome.stdout.splitlines()
    assert lines[0].startswith("mine: NOT fork-safe: mine.Mine: a subclass of ")
    assert lines[1].startswith("missing: NOT fork-safe: nowhere.Handler: cannot ")
    assert lines[1].endswith("; route it through a safelog.QueueHandler (--fix does)")
    assert (
        "null: fork-safe: logging.NullHandler: it discards every record" == (lines[2])
    )
    assert "use safelog" not in outcome.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "error: give CONFIG or --import MODULE"),
        (("a.json", "--import", "app"), "error: give CONFIG or --import MODULE, not"),
        (("missing.json",), "error: cannot read 'missing.json'"),
        (("--import", "no_such_module_here"), "error: cannot import"),
        (("--fix", "--import", "os"), "error: --fix needs CONFIG"),
        (("--frobnicate",), "error: unrecognized arguments: --frobnicate"),
    ],
)
def test_usage_errors_exit_2_with_usage(
    args: tuple[str, ...], message: str, tmp_path: Path
) -> None:
    """A usage error prints the usage line and the error, and exits 2."""
    outcome = doctor(*args, cwd=tmp_path)
    assert 2 == outcome.returncode, outcome.describe()
    assert outcome.stderr.startswith("usage: python -m safelog ")
    assert message in outcome.stderr
    assert "" == outcome.stdout


def test_help_describes_the_exit_status(tmp_path: Path) -> None:
    """--help prints the usage, every option and the exit status, then exits 0."""
    outcome = doctor("--help", cwd=tmp_path)
    assert 0 == outcome.returncode, outcome.describe()
    for text in ("usage: python -m safelog doctor", "--fix", "Exit"):
        assert text in outcome.stdout


def test_torture_is_refused_and_nothing_is_sent_or_written(tmp_path: Path) -> None:
    """--torture used to mail a configuration's SMTPHandler and write into its
    files named by absolute path; it is now refused with what to use instead,
    and neither it nor the check itself reaches a destination."""
    sink = socket.socket()  # the mail server: it must never see a connection
    sink.bind(("127.0.0.1", 0))
    sink.listen(16)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    config = {
        "version": 1,
        "handlers": {
            "mail": {
                "class": "logging.handlers.SMTPHandler",
                "mailhost": ["127.0.0.1", sink.getsockname()[1]],
                "fromaddr": "app@example.com",
                "toaddrs": ["ops@example.com"],
                "subject": "error",
            },
            "file": {
                "class": "logging.FileHandler",
                "filename": str(elsewhere / "app.log"),
            },
        },
        "root": {"handlers": ["mail", "file"]},
    }
    work = tmp_path / "work"
    work.mkdir()
    (work / "logging.json").write_text(json.dumps(config))
    try:
        refused = doctor("--torture", "logging.json", cwd=work)
        checked = doctor("logging.json", cwd=work)
        sink.setblocking(False)
        with pytest.raises(BlockingIOError):
            sink.accept()
    finally:
        sink.close()
    assert 2 == refused.returncode, refused.describe()
    assert refused.stderr.startswith("usage: python -m safelog doctor")
    assert "error: --torture was removed" in refused.stderr
    assert "python -m safelog demo" in refused.stderr
    assert "" == refused.stdout
    assert 1 == checked.returncode, checked.describe()
    assert [] == list(elsewhere.iterdir())
    assert ["logging.json"] == [path.name for path in work.iterdir()]


DJANGO_LOGGING = {
    "version": 1,
    "handlers": {
        "mail_admins": {
            "class": "django.utils.log.AdminEmailHandler",
            "level": "ERROR",
        },
    },
    "loggers": {"django": {"handlers": ["mail_admins"], "level": "INFO"}},
}


def test_third_party_handler_is_routed_through_a_queue_handler(
    tmp_path: Path,
) -> None:
    """A handler the doctor cannot judge (Django's AdminEmailHandler, not
    importable here) gets a way forward, and --fix puts a safelog.QueueHandler
    under its name in front of it: the result passes the doctor."""
    (tmp_path / "logging.json").write_text(json.dumps(DJANGO_LOGGING))
    outcome = doctor("logging.json", cwd=tmp_path)
    assert 1 == outcome.returncode, outcome.describe()
    assert outcome.stdout.splitlines()[0].endswith(
        "; route it through a safelog.QueueHandler (--fix does)"
    )
    fixed = doctor("--fix", "logging.json", cwd=tmp_path)
    assert 0 == fixed.returncode, fixed.describe()
    assert {
        "mail_admins": {
            "class": "safelog.QueueHandler",
            "handlers": ["mail_admins_target"],
        },
        "mail_admins_target": {
            "class": "django.utils.log.AdminEmailHandler",
            "level": "ERROR",
        },
    } == json.loads(fixed.stdout)["handlers"]
    assert DJANGO_LOGGING["loggers"] == json.loads(fixed.stdout)["loggers"]
    (tmp_path / "fixed.json").write_text(fixed.stdout)
    again = doctor("fixed.json", cwd=tmp_path)
    assert 0 == again.returncode, again.describe()
    assert (
        "mail_admins_target: fork-safe: django.utils.log.AdminEmailHandler: "
        "behind safelog.QueueHandler 'mail_admins', whose writer thread alone "
        "calls it and stops before a fork"
    ) == again.stdout.splitlines()[1]


def test_fixed_queue_routing_configures_and_delivers(tmp_path: Path) -> None:
    """The --fix of an importable third-party handler builds with dictConfig,
    and a record logged through the original name reaches the handler, at its
    own level."""
    (tmp_path / "vendor.py").write_text(
        "import logging\n"
        "class Collect(logging.Handler):\n"
        "    def emit(self, record):\n"
        "        with open('collected.txt', 'a') as out:\n"
        "            out.write(record.getMessage() + '\\n')\n"
    )
    config = json.loads(json.dumps(DJANGO_LOGGING))
    config["handlers"]["mail_admins"]["class"] = "vendor.Collect"
    (tmp_path / "logging.json").write_text(json.dumps(config))
    fixed = doctor("--fix", "logging.json", cwd=tmp_path)
    assert 0 == fixed.returncode, fixed.describe()
    (tmp_path / "fixed.json").write_text(fixed.stdout)
    scenario.run_ok(
        """
        import json, logging, logging.config, safelog
        logging.config.dictConfig(json.load(open("fixed.json")))
        logging.getLogger("django").info("below the handler's level")
        logging.getLogger("django").error("queued")
        safelog.flush()
        """,
        cwd=tmp_path,
    )
    assert "queued\n" == (tmp_path / "collected.txt").read_text()


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        (
            "logging.yaml",
            "version: 1\n",
            "error: 'logging.yaml' is YAML, which the doctor does not read "
            "(safelog depends on nothing outside the standard library); convert "
            "it to JSON first, for example with: python -c 'import json,sys,yaml; "
            "json.dump(yaml.safe_load(sys.stdin), sys.stdout)' < logging.yaml > "
            "logging.json",
        ),
        ("logging.conf", "# ours\nversion: 1\nhandlers:\n", "'logging.conf' is YAML"),
        (
            "logging.json",
            "",
            "error: 'logging.json' is empty: give a dictConfig dict as JSON, or a "
            "fileConfig .ini file",
        ),
        (
            "logging.conf",
            "[1, 2]\n",
            "error: 'logging.conf' holds a JSON array, not an object: dictConfig "
            'takes an object such as {"version": 1, "handlers": {...}}',
        ),
        (
            "logging.json",
            '{"handlers": {}}',
            "error: 'logging.json' has no \"version\": dictConfig refuses a dict "
            'without "version": 1',
        ),
        (
            "gunicorn.conf.py",
            "import os\nlogconfig_dict = dict(version=1)\n",
            "error: 'gunicorn.conf.py' computes logconfig_dict (line 2) instead of "
            "writing it as a literal dict",
        ),
        (
            "gunicorn.conf.py",
            "workers = 4\n",
            "error: 'gunicorn.conf.py' assigns neither logconfig_dict nor LOGGING",
        ),
        (
            "logging.json",
            '{"version": 1, "handlers": []}',
            "error: 'handlers' must be a dict of handler configurations",
        ),
        ("logging.ini", "[loggers]\nkeys=root\n", "has no [handlers] section"),
    ],
)
def test_a_file_the_doctor_cannot_read_says_what_is_wrong(
    name: str, text: str, message: str, tmp_path: Path
) -> None:
    """YAML, an empty file, a JSON array, a dict without "version", a Python
    file without a literal configuration, "handlers" that is not a dict and an
    .ini file without [handlers] each get a message naming the problem (and
    exit status 2)."""
    (tmp_path / name).write_text(text)
    outcome = doctor(name, cwd=tmp_path)
    assert 2 == outcome.returncode, outcome.describe()
    assert message in outcome.stderr


GUNICORN_CONF = """\
open("ran", "w").close()  # the doctor must not run this file
workers = 4
logconfig_dict = {
    "handlers": {"file": {"class": "logging.FileHandler", "filename": "app.log"}},
    "root": {"handlers": ["file"]},
}
"""


def test_gunicorn_conf_py_is_read_without_running_it(tmp_path: Path) -> None:
    """The literal logconfig_dict of a gunicorn.conf.py is judged (gunicorn
    adds "version" itself) and --fix prints it converted, as Python."""
    (tmp_path / "gunicorn.conf.py").write_text(GUNICORN_CONF)
    outcome = doctor("gunicorn.conf.py", cwd=tmp_path)
    assert 1 == outcome.returncode, outcome.describe()
    assert "1 of 1 handler is not fork-safe" == outcome.stdout.splitlines()[-1]
    fixed = doctor("--fix", "gunicorn.conf.py", cwd=tmp_path)
    assert 0 == fixed.returncode, fixed.describe()
    name, _, value = fixed.stdout.partition(" = ")
    assert "logconfig_dict" == name
    assert {
        "handlers": {"file": {"class": "safelog.FileHandler", "filename": "app.log"}},
        "root": {"handlers": ["file"]},
    } == ast.literal_eval(value)
    assert not (tmp_path / "ran").exists()


@pytest.mark.parametrize(
    ("verdicts", "last_line"),
    [
        ([True], "the 1 handler is fork-safe"),
        ([True, True], "all 2 handlers are fork-safe"),
        ([False], "1 of 1 handler is not fork-safe"),
        ([False, True], "1 of 2 handlers is not fork-safe"),
        ([False, False], "2 of 2 handlers are not fork-safe"),
    ],
)
def test_the_summary_agrees_in_number(verdicts: list[bool], last_line: str) -> None:
    """The summary line is grammatical for one handler and for several."""
    findings = [Finding(str(i), "x", safe, "r") for i, safe in enumerate(verdicts)]
    assert last_line == summary(findings)


def test_a_factory_function_cannot_be_judged() -> None:
    """A "()" factory that is not a class gets no verdict of fork-safe, and
    the way forward of a queue handler in front."""
    finding = judge_class("made", print, "builtins.print")
    assert (
        Finding(
            "made",
            "builtins.print",
            False,
            "a factory, not a handler class: the doctor cannot tell what it builds",
            route_through_queue=True,
        )
        == finding
    )


def test_every_replacement_names_a_real_stdlib_class() -> None:
    """The doctor's table of hazards matches classes that exist."""
    import importlib

    for replacement in _replacements.REPLACEMENTS:
        module, _, name = replacement.stdlib_path.rpartition(".")
        assert isinstance(getattr(importlib.import_module(module), name), type)
    assert FILE_HAZARD is not None


# -- the targets of safelog.QueueHandler -----------------------------------------

QUEUED_FILE = {"class": "safelog.FileHandler", "filename": "app.log"}


def queue_entry(*targets: str) -> dict[str, object]:
    return {"class": "safelog.QueueHandler", "handlers": list(targets)}


def reasons(findings: list[Finding]) -> dict[str, str]:
    return {
        finding.name: finding.reason for finding in findings if not finding.fork_safe
    }


def test_dict_queue_handler_with_an_unknown_target_is_reported(tmp_path: Path) -> None:
    """A target name the configuration lacks fails dictConfig; the doctor
    says so instead of passing the queue handler."""
    file_entry = {**QUEUED_FILE, "filename": str(tmp_path / "app.log"), "delay": True}
    config = {
        "version": 1,
        "handlers": {"file": file_entry, "queue": queue_entry("fiel")},
    }
    assert {
        "queue": "its target 'fiel' is not a handler of this configuration: "
        "dictConfig fails"
    } == reasons(check_dict_config(config))
    with pytest.raises(ValueError, match="'queue'") as failure:
        logging.config.dictConfig(config)
    assert "unknown target handler 'fiel'" in str(failure.value.__cause__)


def test_dict_queue_handlers_in_a_cycle_are_reported() -> None:
    """Queue handlers whose targets lead back to themselves are reported with
    the path; a chain without a cycle passes."""
    config = {
        "version": 1,
        "handlers": {
            "a": queue_entry("b"),
            "b": queue_entry("a"),
            "c": queue_entry("d"),
            "d": queue_entry("file"),
            "file": QUEUED_FILE,
        },
    }
    assert {
        "a": "its targets lead back to it: 'a' -> 'b' -> 'a'",
        "b": "its targets lead back to it: 'b' -> 'a' -> 'b'",
    } == reasons(check_dict_config(config))


def test_dict_queue_handler_with_malformed_targets_is_reported() -> None:
    """'handlers' must be a list of names."""
    config = {
        "version": 1,
        "handlers": {"queue": {"class": "safelog.QueueHandler", "handlers": "file"}},
    }
    assert {
        "queue": "its 'handlers' must be a list of handler names, got 'file'"
    } == reasons(check_dict_config(config))


QUEUE_INI = """
[loggers]
keys=root

[handlers]
keys={keys}

[formatters]
keys=

[logger_root]
level=INFO
handlers=queue

[handler_file]
class=safelog.FileHandler
args=('app.log',)

[handler_queue]
class=safelog.QueueHandler
args=({targets!r},)
"""


@pytest.mark.parametrize(
    ("keys", "targets", "reason"),
    [
        ("file,queue", ["file"], None),
        (
            "queue,file",
            ["file"],
            "its target 'file' comes after it in [handlers] keys: fileConfig "
            "drops that target before the queue handler finds it, and the "
            "records meant for it are lost",
        ),
        (
            "file,queue",
            ["fiel"],
            "its target 'fiel' is not in [handlers] keys: the records meant "
            "for it are lost",
        ),
        ("file,queue", ["queue"], "its targets lead back to it: 'queue' -> 'queue'"),
    ],
)
def test_ini_queue_handler_targets(keys: str, targets: list[str], reason: str) -> None:
    """In a fileConfig file, a queue handler's targets must be listed before
    it (see docs/config.md) and exist; the doctor checks a literal list."""
    findings = check_ini_config(QUEUE_INI.format(keys=keys, targets=targets))
    expected = {} if reason is None else {"queue": reason}
    assert expected == reasons(findings)
