"""``python -m safelog doctor``: is a logging configuration fork-safe?

It judges every handler of a configuration by its class, from the table in
``_replacements``, and never builds one, so it never writes to the
configuration's destinations.  docs/doctor.md describes what it reads, the
verdicts, ``--fix`` and the exit status.
"""

from __future__ import annotations

import argparse
import ast
import configparser
import contextlib
import dataclasses
import importlib
import json
import logging
import os
import pprint
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from . import _replacements
from ._queue import QueueHandler
from ._targets import path_back

__all__ = ["add_parser", "run"]

_NEW_CONNECTION = (
    "it opens a new connection for every record, and a forked child gets a "
    "fresh handler lock from the standard library"
)
_BUFFERED = (
    "records buffered at fork are copied into the child, so both processes "
    "flush them{}; safelog has no replacement"
)
#: Standard handlers that have no safelog replacement, and what they do at fork.
_OTHER_STDLIB: dict[str, tuple[bool, str]] = {
    "logging.NullHandler": (True, "it discards every record"),
    "logging.handlers.SMTPHandler": (True, _NEW_CONNECTION),
    "logging.handlers.HTTPHandler": (True, _NEW_CONNECTION),
    "logging.handlers.BufferingHandler": (False, _BUFFERED.format("")),
    "logging.handlers.MemoryHandler": (False, _BUFFERED.format(" to the target")),
}
_STDLIB_QUEUE = "logging.handlers.QueueHandler"
# dictConfig keys of a stdlib QueueHandler (3.12+) that safelog.QueueHandler
# does not take: it owns its queue and its writer thread.
_STDLIB_QUEUE_ONLY_KEYS = ("queue", "listener", "respect_handler_level")
_UNEVALUABLE = (ValueError, TypeError, SyntaxError, MemoryError, RecursionError)


@dataclasses.dataclass(frozen=True)
class Finding:
    """The verdict on one handler of a configuration."""

    name: str
    class_path: str
    fork_safe: bool
    reason: str
    replacement: str | None = None
    #: No replacement, but fork-safe behind a safelog.QueueHandler, whose
    #: writer thread alone calls it and stops before a fork.
    route_through_queue: bool = False

    def line(self) -> str:
        """One line for the report."""
        verdict = "fork-safe" if self.fork_safe else "NOT fork-safe"
        text = f"{self.name}: {verdict}: {self.class_path}: {self.reason}"
        if self.replacement is not None:
            text += f"; use {self.replacement}"
        elif self.route_through_queue:
            text += "; route it through a safelog.QueueHandler (--fix does)"
        return text


class ConfigError(Exception):
    """A configuration the doctor cannot read."""


# --- judging handlers ---------------------------------------------------------


def judge_class(name: str, cls: object, path: str | None = None) -> Finding:
    """The verdict on a handler named ``name`` built by ``cls``, a class or a
    factory (``path`` is how the configuration names a factory)."""
    if not isinstance(cls, type):
        reason = "a factory, not a handler class: the doctor cannot tell what it builds"
        return Finding(name, path or _dotted_name(cls), False, reason, None, True)
    shown = _dotted_name(cls)
    replacement = _replacements.replacement_for(cls)
    if replacement is not None:
        return Finding(name, shown, False, replacement.hazard, replacement.safelog_path)
    handler_bases = [base for base in cls.__mro__ if issubclass(base, logging.Handler)]
    if any(base.__module__.split(".")[0] == "safelog" for base in handler_bases):
        reason = (
            "a safelog handler: a forked child gets fresh locks and never writes "
            "what the parent will write"
        )
        return Finding(name, shown, True, reason)
    if shown in _OTHER_STDLIB:
        return Finding(name, shown, *_OTHER_STDLIB[shown])
    replaced = next(
        filter(None, map(_replacements.replacement_for, handler_bases)), None
    )
    reason = "not a handler the doctor knows, so it cannot tell what it does at fork"
    if replaced is not None:
        reason = (
            f"a subclass of {replaced.stdlib_path}, so {replaced.hazard}; the "
            "doctor cannot convert a subclass, whose behaviour it cannot know"
        )
    return Finding(name, shown, False, reason, None, True)


def _dotted_name(obj: object) -> str:
    """``safelog.FileHandler`` rather than ``safelog._handlers.FileHandler``."""
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if obj in _replacements.SAFELOG_HANDLERS.values():
        module = "safelog"
    if isinstance(module, str) and isinstance(qualname, str):
        return f"{module}.{qualname}"
    return repr(obj)


def _import_dotted(path: str, *, ini: bool) -> object:
    """``package.module.Name``, imported as ``logging.config`` does; for
    ``fileConfig`` (``ini``), the logging namespace first ("handlers.X")."""
    if ini:
        with contextlib.suppress(ImportError, AttributeError, ValueError):
            return _import_dotted("logging." + path, ini=False)
    parts = path.split(".")
    found: object = importlib.import_module(parts[0])
    for index, part in enumerate(parts[1:], start=2):
        if not hasattr(found, part):
            importlib.import_module(".".join(parts[:index]))
        found = getattr(found, part)
    return found


def _judge(name: str, builder: object, *, ini: bool) -> tuple[Finding, object]:
    """The verdict on ``builder`` (a class, a factory or a dotted path to
    one), and what it names (None when that cannot be imported)."""
    if not isinstance(builder, str):
        return judge_class(name, builder), builder
    path = builder.strip().removeprefix("ext://")
    try:
        found = _import_dotted(path, ini=ini)
    except (ImportError, AttributeError, ValueError) as error:
        reason = (
            f"cannot import it here ({error}), so the doctor cannot tell what it "
            "does at fork"
        )
        return Finding(name, path, False, reason, None, True), None
    return judge_class(name, found, path), found


class _Entry(NamedTuple):
    """One handler of a configuration, as read."""

    name: str
    builder: object  # a class, a factory or a dotted path to one
    targets: object = None  # the target names it gives, if it is a queue handler
    unreadable: str = ""  # why it cannot be judged at all


def _judge_all(
    entries: Sequence[_Entry], *, ini: bool
) -> tuple[list[Finding], dict[str, list[str]]]:
    """One finding per entry, and the target names of each safelog
    QueueHandler; one whose targets would fail the configuration or lose
    records is not fork-safe."""
    findings: list[Finding] = []
    queue_targets: dict[str, list[str]] = {}
    problems: dict[str, str | None] = {}
    for name, builder, targets, unreadable in entries:
        if unreadable:
            findings.append(Finding(name, "?", False, unreadable))
            continue
        finding, found = _judge(name, builder, ini=ini)
        findings.append(finding)
        if not (isinstance(found, type) and issubclass(found, QueueHandler)):
            continue
        if isinstance(targets, (list, tuple)) and all(
            isinstance(t, str) for t in targets
        ):
            queue_targets[name] = list(targets)
        elif targets is not None:
            problems[name] = (
                f"its 'handlers' must be a list of handler names, got {targets!r}"
            )
    names = [entry.name for entry in entries]
    for name in queue_targets:
        problems[name] = _queue_target_problem(name, queue_targets, names, ini=ini)
    for index, finding in enumerate(findings):
        problem = problems.get(finding.name)
        if problem:
            findings[index] = dataclasses.replace(
                finding, fork_safe=False, reason=problem
            )
    return findings, queue_targets


def _queue_target_problem(
    name: str, queue_targets: Mapping[str, list[str]], names: list[str], *, ini: bool
) -> str | None:
    """What is wrong with the targets of queue handler ``name``, if anything;
    ``names`` lists every handler in the order the configuration builds them."""
    for target in queue_targets[name]:
        if target not in names:
            return f"its target {target!r} is not " + (
                "in [handlers] keys: the records meant for it are lost"
                if ini
                else "a handler of this configuration: dictConfig fails"
            )
        if ini and names.index(target) > names.index(name):
            return (
                f"its target {target!r} comes after it in [handlers] keys: "
                "fileConfig drops that target before the queue handler finds it, "
                "and the records meant for it are lost"
            )

    def steps_of(node: str) -> list[tuple[str, str]]:
        return [(target, target) for target in queue_targets.get(node, ())]

    cycle = path_back(steps_of(name), steps_of, lambda node: node == name, key=str)
    if cycle is None:
        return None
    return "its targets lead back to it: " + " -> ".join(map(repr, [name, *cycle]))


def _handler_configs(config: Mapping[str, Any]) -> dict[str, Any]:
    handlers = config.get("handlers", {})
    if not isinstance(handlers, Mapping):
        raise ConfigError("'handlers' must be a dict of handler configurations")
    return dict(handlers)


def check_dict_config(config: Mapping[str, Any]) -> list[Finding]:
    """One finding per handler of a ``dictConfig`` dictionary, in name order."""
    return sorted(_check_dict(config), key=lambda finding: finding.name)


def _check_dict(config: Mapping[str, Any]) -> list[Finding]:
    """A handler the doctor cannot judge is fork-safe when only safelog
    QueueHandlers call it: no logger does, nor any other handler (a
    MemoryHandler's "target", a stdlib QueueHandler's "handlers")."""
    handler_configs = _handler_configs(config)
    entries = []
    for name, entry in handler_configs.items():
        if not isinstance(entry, Mapping):
            entries.append(_Entry(name, None, None, "its configuration is not a dict"))
            continue
        builder = entry.get("()", entry.get("class"))
        missing = "it has no 'class' or '()'" if builder is None else ""
        entries.append(_Entry(name, builder, entry.get("handlers"), missing))
    findings, queue_targets = _judge_all(entries, ini=False)
    loggers = config.get("loggers")
    callers = [
        config.get("root"),
        *(loggers.values() if isinstance(loggers, Mapping) else ()),
    ]
    callers += [c for n, c in handler_configs.items() if n not in queue_targets]
    called_directly: set[str] = set()
    for caller in callers:
        if not isinstance(caller, Mapping):
            continue
        if isinstance(caller.get("handlers"), list):
            called_directly.update(h for h in caller["handlers"] if isinstance(h, str))
        if isinstance(caller.get("target"), str):
            called_directly.add(caller["target"])
    for index, finding in enumerate(findings):
        queues = [q for q, targets in queue_targets.items() if finding.name in targets]
        if (
            finding.route_through_queue
            and finding.name not in called_directly
            and queues
        ):
            findings[index] = dataclasses.replace(
                finding,
                fork_safe=True,
                reason=f"behind safelog.QueueHandler {queues[0]!r}, whose writer "
                "thread alone calls it and stops before a fork",
                route_through_queue=False,
            )
    return findings


def check_ini_config(text: str, source: str = "<ini>") -> list[Finding]:
    """One finding per handler of a ``fileConfig`` file, in file order; the
    targets of a queue handler are checked when its ``args`` give them as a
    literal list (the doctor never evaluates code)."""
    parser = configparser.ConfigParser()
    try:
        parser.read_string(text, source)
    except configparser.Error as error:
        raise ConfigError(
            f"{source!r} is not a fileConfig .ini file: {error}"
        ) from error
    if not parser.has_section("handlers"):
        raise ConfigError(f"{source!r} has no [handlers] section")
    keys = parser.get("handlers", "keys", fallback="").split(",")
    entries = []
    for name in [key.strip() for key in keys if key.strip()]:
        section = f"handler_{name}"
        builder = parser.get(section, "class", raw=True, fallback=None)
        targets = None  # unless args holds a literal list: code is not evaluated
        with contextlib.suppress(*_UNEVALUABLE):
            args = ast.literal_eval(
                parser.get(section, "args", raw=True, fallback="()")
            )
            first = args[0] if isinstance(args, tuple) and args else args
            if isinstance(first, (list, tuple)) and all(
                isinstance(t, str) for t in first
            ):
                targets = list(first)
        missing = f"[{section}] has no class" if builder is None else ""
        entries.append(_Entry(name, builder, targets, missing))
    return _judge_all(entries, ini=True)[0]


def check_live_config() -> list[Finding]:
    """One finding per handler reachable from the loggers of this process,
    judged as the ``dictConfig`` dict that would build them, named by their
    ``name`` or by where they were found."""
    handlers: dict[str, dict[str, Any]] = {}
    names: dict[int, str] = {}

    def name_of(handler: logging.Handler, where: str) -> str:
        if id(handler) not in names:
            name = (
                handler.name if handler.name and handler.name not in handlers else where
            )
            # A place can read like a name given earlier ("app[0]"): each
            # handler needs an entry of its own, or one is judged for both.
            first, copy = name, 1
            while name in handlers:
                copy += 1
                name = f"{first}#{copy}"
            names[id(handler)] = name
            # Entered before its targets, so a cycle of handlers ends here.
            handlers[name] = {"()": type(handler)}
            fed = [*getattr(getattr(handler, "listener", None), "handlers", ())]
            fed += [getattr(handler, "target", None)]  # a MemoryHandler's
            for attribute in ("handlers", "targets"):  # safelog.QueueHandler's
                value = getattr(handler, attribute, None)
                fed += value if isinstance(value, (list, tuple)) else []
            fed = [target for target in fed if isinstance(target, logging.Handler)]
            handlers[name]["handlers"] = [
                name_of(target, f"{name}->target[{index}]")
                for index, target in enumerate(fed)
            ]
        return names[id(handler)]

    callers: dict[str, Any] = {}
    others = sorted(logging.root.manager.loggerDict.items())
    for logger_name, logger in [("root", logging.getLogger()), *others]:
        if isinstance(logger, logging.Logger):
            on_it = [
                name_of(h, f"{logger_name}[{i}]") for i, h in enumerate(logger.handlers)
            ]
            callers[logger_name] = {"handlers": on_it}
    return _check_dict({"handlers": handlers, "loggers": callers})


# --- reading configurations ---------------------------------------------------


class _Loaded(NamedTuple):
    """A configuration as read: a dictConfig dict, or a fileConfig file's text."""

    source: str
    config: dict[str, Any] | str
    python_name: str | None = None  # what a Python file assigns the dict to

    def check(self) -> list[Finding]:
        if isinstance(self.config, str):
            return check_ini_config(self.config, self.source)
        return check_dict_config(self.config)

    def fixed(self) -> tuple[_Loaded, list[str]]:
        """The converted configuration, and a note per handler left alone."""
        if isinstance(self.config, str):
            text, notes = fix_ini_config(self.config, self.source)
            return self._replace(config=text), notes
        config, notes = fix_dict_config(self.config)
        return self._replace(config=config), notes

    def text(self) -> str:
        """The configuration as its file holds it (a dict from a module: JSON)."""
        if isinstance(self.config, str):
            return self.config
        if self.python_name is not None:
            shown = pprint.pformat(self.config, sort_dicts=False)
            return f"{self.python_name} = {shown}\n"

        def default(value: object) -> str:
            if value is sys.stderr or value is sys.__stderr__:
                return "ext://sys.stderr"
            if value is sys.stdout or value is sys.__stdout__:
                return "ext://sys.stdout"
            if callable(value):
                return _dotted_name(value)
            raise TypeError(f"cannot write {value!r} as JSON")

        try:
            return json.dumps(self.config, indent=2, default=default) + "\n"
        except (TypeError, ValueError) as error:
            raise ConfigError(
                f"cannot print the converted configuration: {error}"
            ) from error


#: What a Python configuration file may assign its dict to: gunicorn's setting
#: (gunicorn adds "version" itself), then Django's.
_PYTHON_NAMES = ("logconfig_dict", "LOGGING")
_MODULE_ATTRIBUTE = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")
_JSON_TYPES = {list: "a JSON array", str: "a JSON string", bool: "a JSON boolean"}


def load_config(source: str) -> _Loaded:
    """Read ``source``: ``module:attribute``, a JSON file, a Python file
    (read with ``ast``, never run) or an .ini file.  Raises ConfigError with
    what is wrong with it."""
    if _MODULE_ATTRIBUTE.fullmatch(source) and not os.path.exists(source):
        return _Loaded(source, _checked_version(_import_dict(source), source))
    suffix = Path(source).suffix.lower()
    if suffix in (".yaml", ".yml"):
        raise ConfigError(_yaml_refusal(source))
    try:
        text = Path(source).read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot read {source!r}: {error.strerror}") from error
    except UnicodeDecodeError as error:
        raise ConfigError(f"{source!r} is not UTF-8 text: {error}") from error
    if not text.strip():
        raise ConfigError(
            f"{source!r} is empty: give a dictConfig dict as JSON, or a "
            "fileConfig .ini file"
        )
    if suffix == ".py":
        return _python_config(text, source)
    try:
        loaded = json.loads(text)
    except ValueError as error:
        if suffix == ".json" or text.lstrip().startswith("{"):
            raise ConfigError(f"{source!r} is not valid JSON: {error}") from error
        if _looks_like_yaml(text):
            raise ConfigError(_yaml_refusal(source)) from None
        return _Loaded(source, text)
    if not isinstance(loaded, dict):
        kind = "JSON null" if loaded is None else "a JSON number"
        raise ConfigError(
            f"{source!r} holds {_JSON_TYPES.get(type(loaded), kind)}, not an "
            'object: dictConfig takes an object such as {"version": 1, '
            '"handlers": {...}}'
        )
    return _Loaded(source, _checked_version(loaded, source))


def _import_dict(source: str) -> dict[str, Any]:
    module_name, _, attribute = source.partition(":")
    try:
        found: object = importlib.import_module(module_name)
        for part in attribute.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError) as error:
        raise ConfigError(f"cannot load {source!r}: {error}") from error
    if not isinstance(found, Mapping):
        raise ConfigError(
            f"{source!r} is a {type(found).__name__}, not a dictConfig dict"
        )
    return dict(found)


def _checked_version(config: dict[str, Any], source: str) -> dict[str, Any]:
    if "version" not in config:
        raise ConfigError(
            f'{source!r} has no "version": dictConfig refuses a dict without '
            '"version": 1'
        )
    if config["version"] != 1:
        raise ConfigError(
            f'{source!r} has "version": {config["version"]!r}: dictConfig knows '
            "only version 1"
        )
    return config


def _looks_like_yaml(text: str) -> bool:
    """Whether ``text`` starts as YAML does (``version: 1``) rather than as
    an .ini file (``[loggers]``)."""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith(("#", ";")):
            return (
                stripped == "---" or re.match(r"[\w.-]+:(\s|$)", stripped) is not None
            )
    return False


def _yaml_refusal(source: str) -> str:
    return (
        f"{source!r} is YAML, which the doctor does not read (safelog depends "
        "on nothing outside the standard library); convert it to JSON first, "
        "for example with: python -c 'import json,sys,yaml; json.dump("
        f"yaml.safe_load(sys.stdin), sys.stdout)' < {source} > logging.json"
    )


def _python_config(text: str, source: str) -> _Loaded:
    """The literal dict a Python file assigns at its top level to one of
    ``_PYTHON_NAMES``; the last assignment wins, as when the file runs."""
    try:
        tree = ast.parse(text, source)
    except SyntaxError as error:
        raise ConfigError(
            f"{source!r} is not valid Python: {error.msg} (line {error.lineno})"
        ) from error
    assigned: dict[str, ast.expr] = {}
    for statement in tree.body:
        if isinstance(statement, ast.Assign):
            targets, value = statement.targets, statement.value
        elif isinstance(statement, ast.AnnAssign) and statement.value is not None:
            targets, value = [statement.target], statement.value
        else:
            continue
        assigned.update((t.id, value) for t in targets if isinstance(t, ast.Name))
    name = next((name for name in _PYTHON_NAMES if name in assigned), None)
    if name is None:
        raise ConfigError(
            f"{source!r} assigns neither logconfig_dict nor LOGGING at its top "
            "level: the doctor reads a Python file only for one of those"
        )
    try:
        config = ast.literal_eval(assigned[name])
    except _UNEVALUABLE:
        raise ConfigError(
            f"{source!r} computes {name} (line {assigned[name].lineno}) instead of "
            "writing it as a literal dict, and the doctor never runs a Python "
            f"file: give MODULE:{name} to import (and so run) it instead"
        ) from None
    if not isinstance(config, dict):
        raise ConfigError(
            f"{source!r} sets {name} to a {type(config).__name__}, not a dict"
        )
    if name != "logconfig_dict":
        _checked_version(config, source)
    return _Loaded(source, config, name)


# --- converting ---------------------------------------------------------------


def fix_dict_config(config: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A copy of ``config`` with every replaceable handler converted to its
    safelog class, every handler the doctor cannot judge routed through a
    safelog.QueueHandler that takes its name (it becomes ``NAME_target``),
    and a note for each handler left as it is.  ``config`` is not changed."""
    handlers = _handler_configs(config)
    findings = {finding.name: finding for finding in check_dict_config(config)}
    notes = []
    for name in list(handlers):
        finding = findings[name]
        if finding.fork_safe:
            continue
        if finding.route_through_queue:
            target, number = f"{name}_target", 1
            while target in handlers:
                number += 1
                target = f"{name}_target{number}"
            handlers[target] = handlers[name]
            handlers[name] = {"class": "safelog.QueueHandler", "handlers": [target]}
        elif finding.replacement is None:
            notes.append(f"{name}: not converted: {finding.reason}")
        elif finding.class_path == _STDLIB_QUEUE and "handlers" not in handlers[name]:
            notes.append(
                f"{name}: not converted: a QueueHandler configured without "
                "'handlers' (the names of its targets) has a listener the "
                "doctor cannot see"
            )
        else:
            converted = dict(handlers[name])
            if finding.class_path == _STDLIB_QUEUE:
                for key in _STDLIB_QUEUE_ONLY_KEYS:
                    converted.pop(key, None)
            converted["()" if "()" in converted else "class"] = finding.replacement
            handlers[name] = converted
    return {**config, "handlers": handlers}, notes


def fix_ini_config(text: str, source: str = "<ini>") -> tuple[str, list[str]]:
    """``text`` with the class of every replaceable handler converted, every
    other line (comments too) kept as it is, and the notes of what was not."""
    replacements: dict[str, str] = {}
    notes = []
    for finding in check_ini_config(text, source):
        reason = finding.reason
        if finding.fork_safe:
            continue
        if finding.replacement == "safelog.QueueHandler":
            reason = "fileConfig cannot name the targets of a queue handler"
        elif finding.route_through_queue:
            reason += (
                "; in an .ini file, route it through a safelog.QueueHandler by "
                "hand (see docs/doctor.md)"
            )
        elif finding.replacement is not None:
            replacements[f"handler_{finding.name}"] = finding.replacement
            continue
        notes.append(f"{finding.name}: not converted: {reason}")
    lines = []
    section = None
    for line in text.splitlines(keepends=True):
        header = re.match(r"\s*\[([^\]]+)\]", line)
        key = re.match(r"(\s*class\s*[=:]\s*)(\S.*?)(\s*)$", line, re.DOTALL)
        if header:
            section = header.group(1).strip()
        elif section in replacements and key:
            line = f"{key.group(1)}{replacements[section]}{key.group(3)}"
        lines.append(line)
    return "".join(lines), notes


# --- the command --------------------------------------------------------------

#: Why ``--torture`` is refused, and what to use instead.
TORTURE_REMOVED = (
    "--torture was removed: it wrote test records to the configuration's own "
    "destinations (log files by absolute path, mail servers, sockets), which a "
    "check must never do.  To watch the fork hazard, run 'python -m safelog "
    "demo'; to test your own configuration under fork, follow 'Testing a "
    "configuration under fork' in docs/doctor.md"
)


def add_parser(commands: Any) -> None:
    """Add the ``doctor`` command to ``commands``, the result of
    ``ArgumentParser.add_subparsers()``; it sets ``run`` to :func:`run`."""
    doctor: argparse.ArgumentParser = commands.add_parser(
        "doctor",
        help="check whether a logging configuration is fork-safe, and fix it",
        description=(
            "Print, for every handler of a logging configuration, whether it is "
            "fork-safe, why, and the way to make it so.  It never writes to the "
            "configuration's destinations.  Exit status: 0 when every handler "
            "is fork-safe, 1 when one is not, 2 on a usage error."
        ),
    )
    doctor.add_argument(
        "config",
        nargs="?",
        metavar="CONFIG",
        help="a JSON file or MODULE:ATTRIBUTE holding a dictConfig dict, a "
        "Python file setting logconfig_dict or LOGGING to a literal dict (such "
        "as gunicorn.conf.py, read without running it), or an .ini file",
    )
    doctor.add_argument(
        "--import",
        dest="import_module",
        metavar="MODULE",
        help="instead of CONFIG, import MODULE (from the current directory "
        "too) and inspect the logging configuration it sets up",
    )
    doctor.add_argument(
        "--fix",
        action="store_true",
        help="print the configuration with every replaceable handler converted "
        "to safelog and every other one routed through a safelog.QueueHandler",
    )
    # Kept only to refuse it with a message that says what to use instead.
    doctor.add_argument("--torture", action="store_true", help=argparse.SUPPRESS)
    doctor.set_defaults(run=run, doctor_parser=doctor)


def run(args: argparse.Namespace) -> int:
    """Run the doctor for parsed ``args``; return the exit status."""
    parser: argparse.ArgumentParser = args.doctor_parser
    if args.torture:
        parser.error(TORTURE_REMOVED)
    if (args.config is None) == (args.import_module is None):
        both = ", not both" if args.config is not None else ""
        parser.error(f"give CONFIG or --import MODULE{both}")
    if args.import_module is not None and args.fix:
        parser.error(
            "--fix needs CONFIG: a configuration set up by code has no file to "
            "convert (call safelog.install(queue=True) after it instead)"
        )
    # Run as "python -m" the current directory is on sys.path; run otherwise
    # it may not be, yet the configuration's modules are found there.
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        if args.import_module is not None:
            importlib.import_module(args.import_module)
            return _report(check_live_config())
        loaded = load_config(args.config)
        if not args.fix:
            return _report(loaded.check())
        fixed, notes = loaded.fixed()
        text, findings = fixed.text(), fixed.check()
    except ImportError as error:
        parser.error(f"cannot import {args.import_module!r}: {error}")
    except ConfigError as error:
        parser.error(str(error))
    sys.stdout.write(text)
    # Every handler the result leaves unsafe is named, with or without a
    # note from the conversion (a queue whose target is missing has none).
    noted = {note.partition(": ")[0] for note in notes}
    notes += [f.line() for f in findings if not f.fork_safe and f.name not in noted]
    for note in notes:
        print(f"{parser.prog}: {note}", file=sys.stderr)
    return 0 if all(finding.fork_safe for finding in findings) else 1


def summary(findings: Sequence[Finding]) -> str:
    """The last line of the report: how many handlers are not fork-safe."""
    total = len(findings)
    unsafe = sum(not finding.fork_safe for finding in findings)
    handlers = "handler" if total == 1 else "handlers"
    if total == 0:
        return "no handlers: nothing to check"
    if unsafe:
        verb = "is" if unsafe == 1 else "are"
        return f"{unsafe} of {total} {handlers} {verb} not fork-safe"
    if total == 1:
        return "the 1 handler is fork-safe"
    return f"all {total} handlers are fork-safe"


def _report(findings: Sequence[Finding]) -> int:
    for finding in findings:
        print(finding.line())
    print(summary(findings))
    return 0 if all(finding.fork_safe for finding in findings) else 1
