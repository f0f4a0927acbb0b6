"""``python -m safelog doctor``: is a logging configuration fork-safe?

The doctor reads a configuration (a ``dictConfig`` dictionary from a JSON
file, a ``module:attribute`` or a Python file's literal ``logconfig_dict`` or
``LOGGING``, an ``.ini`` file for ``fileConfig``, or the live configuration a
module sets up when imported) and prints one line per handler: fork-safe or
not, why, and the way forward: the safelog class that replaces it, or a
``safelog.QueueHandler`` to route it through.  The verdicts and hazards come
from the table in ``_replacements``.  It never builds a handler, so it never
writes to a configuration's destinations.

``--fix`` prints the configuration with every replaceable handler converted
and, in a dict, every other one routed through a ``safelog.QueueHandler``.

Exit status: 0 when every handler is fork-safe, 1 otherwise, 2 for a usage
error or a configuration that cannot be read.
"""

from __future__ import annotations

import argparse
import ast
import configparser
import contextlib
import copy
import dataclasses
import importlib
import json
import logging
import os
import pprint
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

from . import _replacements
from ._queue import QueueHandler
from ._targets import path_back

__all__ = [
    "Finding",
    "add_parser",
    "check_dict_config",
    "check_ini_config",
    "check_live_config",
    "fix_dict_config",
    "fix_ini_config",
    "load_config",
    "run",
]

PROG = "python -m safelog doctor"

#: Standard handlers that have no safelog replacement, and what they do at fork.
_OTHER_STDLIB: dict[str, tuple[bool, str]] = {
    "logging.NullHandler": (True, "it discards every record"),
    "logging.handlers.SMTPHandler": (
        True,
        "it opens a new connection for every record, and a forked child gets "
        "a fresh handler lock from the standard library",
    ),
    "logging.handlers.HTTPHandler": (
        True,
        "it opens a new connection for every record, and a forked child gets "
        "a fresh handler lock from the standard library",
    ),
    "logging.handlers.BufferingHandler": (
        False,
        "records buffered at fork are copied into the child, so both "
        "processes flush them; safelog has no replacement",
    ),
    "logging.handlers.MemoryHandler": (
        False,
        "records buffered at fork are copied into the child, so both "
        "processes flush them to the target; safelog has no replacement",
    ),
}

# dictConfig keys of a stdlib QueueHandler (3.12+) that safelog.QueueHandler
# does not take: it owns its queue and its writer thread.
_STDLIB_QUEUE_ONLY_KEYS = ("queue", "listener", "respect_handler_level")


@dataclasses.dataclass(frozen=True)
class Finding:
    """The verdict on one handler of a configuration."""

    name: str
    class_path: str
    fork_safe: bool
    reason: str
    replacement: str | None = None
    #: The way forward when there is no replacement: a safelog.QueueHandler
    #: in front, whose writer thread alone calls the handler and stops before
    #: a fork.
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


# --- judging one handler class ------------------------------------------------


def _is_safelog_class(cls: type) -> bool:
    return any(
        base.__module__ == "safelog" or base.__module__.startswith("safelog.")
        for base in cls.__mro__
        if issubclass(base, logging.Handler) and base is not logging.Handler
    )


def judge_class(name: str, cls: object, path: str | None = None) -> Finding:
    """The verdict on a handler named ``name`` built by ``cls`` (a class, a
    factory, or None when ``path`` could not be imported)."""
    if not isinstance(cls, type):
        shown = path or _replacements_path(cls)
        return Finding(
            name,
            shown,
            False,
            "a factory, not a handler class: the doctor cannot tell what it builds",
            route_through_queue=True,
        )
    shown = _public_path(cls)
    replacement = _replacements.replacement_for(cls)
    if replacement is not None:
        shipped = _replacements.safelog_class_for(cls)
        return Finding(
            name,
            shown,
            False,
            replacement.hazard,
            replacement.safelog_path if shipped is not None else None,
        )
    if _is_safelog_class(cls):
        return Finding(
            name,
            shown,
            True,
            "a safelog handler: a forked child gets fresh locks and never writes "
            "what the parent will write",
        )
    if shown in _OTHER_STDLIB:
        fork_safe, reason = _OTHER_STDLIB[shown]
        return Finding(name, shown, fork_safe, reason)
    for base in cls.__mro__[1:]:
        base_replacement = _replacements.replacement_for(base)
        if base_replacement is not None:
            return Finding(
                name,
                shown,
                False,
                f"a subclass of {base_replacement.stdlib_path}, so "
                f"{base_replacement.hazard}; the doctor cannot convert a subclass, "
                "whose behaviour it cannot know",
                route_through_queue=True,
            )
    return Finding(
        name,
        shown,
        False,
        "not a handler the doctor knows, so it cannot tell what it does at fork",
        route_through_queue=True,
    )


def _public_path(cls: type) -> str:
    """``safelog.FileHandler`` rather than ``safelog._handlers.FileHandler``."""
    if _replacements.SAFELOG_HANDLERS.get(cls.__name__) is cls:
        return f"safelog.{cls.__name__}"
    return _replacements.class_path(cls)


def _replacements_path(obj: object) -> str:
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if isinstance(module, str) and isinstance(qualname, str):
        return f"{module}.{qualname}"
    return repr(obj)


def _resolve_dotted(path: str) -> object:
    """Import ``package.module.Name`` as ``logging.config`` does."""
    parts = path.split(".")
    found: object = importlib.import_module(parts[0])
    imported = parts[0]
    for part in parts[1:]:
        imported += "." + part
        try:
            found = getattr(found, part)
        except AttributeError:
            importlib.import_module(imported)
            found = getattr(found, part)
    return found


def _judge_path(name: str, path: str, *, ini: bool = False) -> Finding:
    path = _clean_path(path)
    try:
        found = _resolve_handler_path(path, ini=ini)
    except (ImportError, AttributeError, ValueError) as error:
        return Finding(
            name,
            path,
            False,
            f"cannot import it here ({error}), so the doctor cannot tell what it "
            "does at fork",
            route_through_queue=True,
        )
    return judge_class(name, found, path)


def _clean_path(path: str) -> str:
    path = path.strip()
    return path[len("ext://") :] if path.startswith("ext://") else path


def _resolve_handler_path(path: str, *, ini: bool) -> object:
    if ini:
        # fileConfig looks a class up in the logging module's namespace first
        # ("StreamHandler", "handlers.RotatingFileHandler").
        with contextlib.suppress(ImportError, AttributeError, ValueError):
            return _resolve_dotted("logging." + path)
    return _resolve_dotted(path)


def _is_queue_handler_path(builder: object, *, ini: bool) -> bool:
    """Whether ``builder`` (a class or a dotted path) is safelog.QueueHandler
    or a subclass of it."""
    if isinstance(builder, str):
        try:
            builder = _resolve_handler_path(_clean_path(builder), ini=ini)
        except (ImportError, AttributeError, ValueError):
            return False
    return isinstance(builder, type) and issubclass(builder, QueueHandler)


# --- the targets of queue handlers --------------------------------------------


def _queue_target_problem(
    name: str,
    queue_targets: Mapping[str, Sequence[str]],
    handler_names: Sequence[str],
    *,
    ini: bool,
) -> str | None:
    """What is wrong with the targets the queue handler ``name`` names, if
    anything: ``queue_targets`` maps every queue handler of the configuration
    to its target names, ``handler_names`` lists all handlers in the order
    the configuration builds them."""
    for target in queue_targets[name]:
        if target not in handler_names:
            if ini:
                return (
                    f"its target {target!r} is not in [handlers] keys: the records "
                    "meant for it are lost"
                )
            return (
                f"its target {target!r} is not a handler of this configuration: "
                "dictConfig fails"
            )
        if ini and handler_names.index(target) > handler_names.index(name):
            return (
                f"its target {target!r} comes after it in [handlers] keys: "
                "fileConfig drops that target before the queue handler finds it, "
                "and the records meant for it are lost"
            )
    cycle = _cycle_from(name, queue_targets)
    if cycle is not None:
        return "its targets lead back to it: " + " -> ".join(map(repr, cycle))
    return None


def _cycle_from(
    start: str, queue_targets: Mapping[str, Sequence[str]]
) -> list[str] | None:
    """A path of target names from queue handler ``start`` back to it."""

    def steps_of(name: str) -> list[tuple[str, str]]:
        return [(target, target) for target in queue_targets.get(name, ())]

    path = path_back(steps_of(start), steps_of, lambda name: name == start, key=str)
    return None if path is None else [start, *path]


# --- reading configurations ---------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LoadedConfig:
    """A configuration as read: a ``dictConfig`` dict, or the text of an .ini
    file for ``fileConfig`` (``dict_config`` is None)."""

    source: str
    dict_config: dict[str, Any] | None = None
    ini_text: str = ""
    #: The name a Python file assigns the dict to; --fix prints that assignment.
    python_name: str | None = None

    def check(self) -> list[Finding]:
        """One finding per handler."""
        if self.dict_config is not None:
            return check_dict_config(self.dict_config)
        return check_ini_config(self.ini_text, self.source)

    def fixed(self) -> tuple[LoadedConfig, list[str]]:
        """The converted configuration, and a note per handler left alone."""
        if self.dict_config is not None:
            config, notes = fix_dict_config(self.dict_config)
            return dataclasses.replace(self, dict_config=config), notes
        text, notes = fix_ini_config(self.ini_text, self.source)
        return dataclasses.replace(self, ini_text=text), notes

    def text(self) -> str:
        """The configuration as a file of its kind holds it."""
        if self.dict_config is None:
            return self.ini_text
        if self.python_name is not None:
            shown = pprint.pformat(self.dict_config, sort_dicts=False)
            return f"{self.python_name} = {shown}\n"
        try:
            return json.dumps(self.dict_config, indent=2, default=_json_default) + "\n"
        except TypeError as error:
            raise ConfigError(
                f"cannot print the converted configuration: {error}"
            ) from error


#: What a Python configuration file may assign its dict to: gunicorn's setting
#: (gunicorn adds "version" itself), then Django's.
_PYTHON_NAMES = ("logconfig_dict", "LOGGING")

_YAML_TO_JSON = (
    "python -c 'import json,sys,yaml; json.dump(yaml.safe_load(sys.stdin), "
    "sys.stdout)' < {source} > logging.json"
)

_JSON_TYPES = {
    list: "a JSON array",
    str: "a JSON string",
    int: "a JSON number",
    float: "a JSON number",
    bool: "a JSON boolean",
    type(None): "JSON null",
}


def load_config(source: str) -> LoadedConfig:
    """Read ``source``: ``module:attribute``, a JSON file, a Python file
    (read with ``ast``, never run) or an .ini file.  Raises ConfigError with
    what is wrong with it."""
    if _is_module_reference(source):
        return LoadedConfig(source, _checked_version(_import_dict(source), source))
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
    if suffix == ".json" or text.lstrip().startswith("{") or _is_json(text):
        return LoadedConfig(
            source, _checked_version(_json_config(text, source), source)
        )
    if _looks_like_yaml(text):
        raise ConfigError(_yaml_refusal(source))
    return LoadedConfig(source, ini_text=text)


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
    return copy.deepcopy(dict(found))


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _json_config(text: str, source: str) -> dict[str, Any]:
    try:
        loaded = json.loads(text)
    except ValueError as error:
        raise ConfigError(f"{source!r} is not valid JSON: {error}") from error
    if not isinstance(loaded, dict):
        raise ConfigError(
            f"{source!r} holds {_JSON_TYPES.get(type(loaded), 'a value')}, not "
            'an object: dictConfig takes an object such as {"version": 1, '
            '"handlers": {...}}'
        )
    return loaded


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
    """Whether ``text``, not JSON, starts as YAML does (``version: 1``)
    rather than as an .ini file (``[loggers]``)."""
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
        "for example with: " + _YAML_TO_JSON.format(source=source)
    )


def _python_config(text: str, source: str) -> LoadedConfig:
    """The dict a Python file (``gunicorn.conf.py``, Django settings) assigns
    at its top level to ``logconfig_dict`` or ``LOGGING``, when it is written
    as a literal: the file is parsed, never run."""
    try:
        tree = ast.parse(text, source)
    except SyntaxError as error:
        raise ConfigError(
            f"{source!r} is not valid Python: {error.msg} (line {error.lineno})"
        ) from error
    assigned: dict[str, ast.expr] = {}
    for statement in tree.body:  # the last assignment wins, as when it runs
        if isinstance(statement, ast.Assign):
            for target in statement.targets:
                if isinstance(target, ast.Name):
                    assigned[target.id] = statement.value
        elif (
            isinstance(statement, ast.AnnAssign)
            and isinstance(statement.target, ast.Name)
            and statement.value is not None
        ):
            assigned[statement.target.id] = statement.value
    for name in _PYTHON_NAMES:
        if name not in assigned:
            continue
        value = assigned[name]
        try:
            config = ast.literal_eval(value)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            raise ConfigError(
                f"{source!r} computes {name} (line {value.lineno}) instead of "
                "writing it as a literal dict, and the doctor never runs a "
                f"Python file: give MODULE:{name} to import (and so run) it instead"
            ) from None
        if not isinstance(config, dict):
            raise ConfigError(
                f"{source!r} sets {name} to a {type(config).__name__}, not a dict"
            )
        if name != "logconfig_dict":
            _checked_version(config, source)
        return LoadedConfig(source, config, python_name=name)
    raise ConfigError(
        f"{source!r} assigns neither logconfig_dict nor LOGGING at its top "
        "level: the doctor reads a Python file only for one of those"
    )


def _is_module_reference(source: str) -> bool:
    return re.fullmatch(
        r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*", source
    ) is not None and not os.path.exists(source)


def _handler_configs(config: Mapping[str, Any]) -> dict[str, Any]:
    handlers = config.get("handlers", {})
    if not isinstance(handlers, Mapping):
        raise ConfigError("'handlers' must be a dict of handler configurations")
    return dict(handlers)


def check_dict_config(config: Mapping[str, Any]) -> list[Finding]:
    """One finding per handler of a ``dictConfig`` dictionary, in name order.

    A ``safelog.QueueHandler`` whose target names are missing from the
    configuration, or lead back to it, is reported as ``dictConfig`` would
    fail on it.  A handler the doctor cannot judge (a third-party class, a
    subclass, a factory) is fork-safe when only safelog.QueueHandlers call
    it: it is not on any logger, nor the target of any other handler."""
    handler_configs = _handler_configs(config)
    queue_targets: dict[str, Sequence[str]] = {}
    malformed: dict[str, str] = {}
    for name, handler_config in handler_configs.items():
        if not isinstance(handler_config, Mapping):
            continue
        builder = handler_config.get("()", handler_config.get("class"))
        if not _is_queue_handler_path(builder, ini=False):
            continue
        targets = handler_config.get("handlers")
        if isinstance(targets, (list, tuple)) and all(
            isinstance(target, str) for target in targets
        ):
            queue_targets[name] = list(targets)
        elif targets is not None:
            malformed[name] = (
                f"its 'handlers' must be a list of handler names, got {targets!r}"
            )
    findings = []
    for name, handler_config in sorted(handler_configs.items()):
        if not isinstance(handler_config, Mapping):
            findings.append(
                Finding(name, "?", False, "its configuration is not a dict")
            )
            continue
        builder = handler_config.get("()", handler_config.get("class"))
        if builder is None:
            findings.append(Finding(name, "?", False, "it has no 'class' or '()'"))
            continue
        finding = (
            _judge_path(name, builder)
            if isinstance(builder, str)
            else judge_class(name, builder)
        )
        problem = malformed.get(name)
        if problem is None and name in queue_targets:
            problem = _queue_target_problem(
                name, queue_targets, list(handler_configs), ini=False
            )
        if problem is not None:
            finding = dataclasses.replace(finding, fork_safe=False, reason=problem)
        findings.append(finding)
    called_directly = _called_directly(config, handler_configs, queue_targets)
    return [
        _behind_queue(finding, finding.name, queue_targets)
        if finding.route_through_queue and finding.name not in called_directly
        else finding
        for finding in findings
    ]


def _called_directly(
    config: Mapping[str, Any],
    handler_configs: Mapping[str, Any],
    queue_targets: Mapping[str, Sequence[str]],
) -> set[str]:
    """The handler names a logger, or a handler other than a safelog
    QueueHandler (a MemoryHandler's "target", a standard QueueHandler's
    "handlers"), calls."""
    loggers = config.get("loggers")
    callers = [
        config.get("root"),
        *(loggers.values() if isinstance(loggers, Mapping) else ()),
    ]
    names: set[str] = set()
    for caller in callers:
        if isinstance(caller, Mapping) and isinstance(caller.get("handlers"), list):
            names.update(h for h in caller["handlers"] if isinstance(h, str))
    for name, handler_config in handler_configs.items():
        if name in queue_targets or not isinstance(handler_config, Mapping):
            continue
        if isinstance(handler_config.get("target"), str):
            names.add(handler_config["target"])
        if isinstance(handler_config.get("handlers"), list):
            names.update(h for h in handler_config["handlers"] if isinstance(h, str))
    return names


def _behind_queue(
    finding: Finding, key: str, queue_targets: Mapping[str, Sequence[str]]
) -> Finding:
    """``finding`` judged again for a handler (``key`` in ``queue_targets``)
    that only safelog queue handlers call."""
    queues = [name for name, targets in queue_targets.items() if key in targets]
    if not queues:
        return finding
    return dataclasses.replace(
        finding,
        fork_safe=True,
        reason=f"behind safelog.QueueHandler {queues[0]!r}, whose writer thread "
        "alone calls it and stops before a fork",
        route_through_queue=False,
    )


def _read_ini(text: str, source: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser()
    try:
        parser.read_string(text, source)
    except configparser.Error as error:
        raise ConfigError(
            f"{source!r} is not a fileConfig .ini file: {error}"
        ) from error
    if not parser.has_section("handlers"):
        raise ConfigError(f"{source!r} has no [handlers] section")
    return parser


def _ini_handler_names(parser: configparser.ConfigParser) -> list[str]:
    keys = parser.get("handlers", "keys", fallback="")
    return [name.strip() for name in keys.split(",") if name.strip()]


def check_ini_config(text: str, source: str = "<ini>") -> list[Finding]:
    """One finding per handler of a ``fileConfig`` file, in file order.

    A ``safelog.QueueHandler`` whose ``args`` name, as a literal list, a
    target that is missing, listed after it, or leads back to it, is reported
    with what ``fileConfig`` would then do."""
    parser = _read_ini(text, source)
    names = _ini_handler_names(parser)
    queue_targets: dict[str, Sequence[str]] = {}
    for name in names:
        section = f"handler_{name}"
        path = parser.get(section, "class", raw=True, fallback=None)
        if path is not None and _is_queue_handler_path(path, ini=True):
            targets = _literal_target_names(
                parser.get(section, "args", raw=True, fallback="()")
            )
            if targets is not None:
                queue_targets[name] = targets
    findings = []
    for name in names:
        section = f"handler_{name}"
        if not parser.has_option(section, "class"):
            findings.append(Finding(name, "?", False, f"[{section}] has no class"))
            continue
        finding = _judge_path(name, parser.get(section, "class", raw=True), ini=True)
        if name in queue_targets:
            problem = _queue_target_problem(name, queue_targets, names, ini=True)
            if problem is not None:
                finding = dataclasses.replace(finding, fork_safe=False, reason=problem)
        findings.append(finding)
    return findings


def _literal_target_names(args: str) -> list[str] | None:
    """The target names in a queue handler's ``args``, when they are written
    as a literal list of strings (fileConfig evaluates ``args`` as code; the
    doctor does not run it)."""
    try:
        value = ast.literal_eval(args.strip())
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    if isinstance(value, tuple) and value:
        value = value[0]
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    return None


def _named_loggers() -> list[tuple[str, logging.Logger]]:
    loggers: list[tuple[str, logging.Logger]] = [("root", logging.getLogger())]
    for logger_name, logger in sorted(logging.root.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger):
            loggers.append((logger_name, logger))
    return loggers


def _reachable_handlers() -> Iterator[tuple[str, logging.Handler]]:
    """Each handler on a logger, and each handler it passes records to, once,
    with its name (or where it was found)."""
    seen: set[int] = set()
    pending: list[tuple[str, logging.Handler]] = []
    for logger_name, logger in _named_loggers():
        for index, handler in enumerate(logger.handlers):
            pending.append((handler.name or f"{logger_name}[{index}]", handler))
    while pending:
        name, handler = pending.pop(0)
        if id(handler) in seen:
            continue
        seen.add(id(handler))
        yield name, handler
        for index, target in enumerate(_handlers_fed_by(handler)):
            pending.append((target.name or f"{name}->target[{index}]", target))


def _handlers_fed_by(handler: logging.Handler) -> list[logging.Handler]:
    """The handlers that ``handler`` passes its records to, when it can tell."""
    targets: list[logging.Handler] = []
    listener = getattr(handler, "listener", None)  # stdlib QueueHandler, 3.12+
    if listener is not None:
        targets.extend(getattr(listener, "handlers", ()))
    target = getattr(handler, "target", None)  # MemoryHandler
    if isinstance(target, logging.Handler):
        targets.append(target)
    for attribute in ("handlers", "targets"):  # safelog.QueueHandler
        found = getattr(handler, attribute, None)
        if isinstance(found, (list, tuple)):
            targets.extend(h for h in found if isinstance(h, logging.Handler))
    return targets


def check_live_config() -> list[Finding]:
    """One finding per handler reachable from the loggers of this process; a
    handler the doctor cannot judge is fork-safe when only safelog
    QueueHandlers call it."""
    found = list(_reachable_handlers())
    called_directly = {
        id(handler) for _, logger in _named_loggers() for handler in logger.handlers
    }
    queue_targets: dict[str, Sequence[str]] = {}
    for name, handler in found:
        targets = _handlers_fed_by(handler)
        if isinstance(handler, QueueHandler):
            queue_targets[name] = [str(id(target)) for target in targets]
        else:
            called_directly.update(id(target) for target in targets)
    findings = []
    for name, handler in found:
        finding = judge_class(name, type(handler))
        if finding.route_through_queue and id(handler) not in called_directly:
            finding = _behind_queue(finding, str(id(handler)), queue_targets)
        findings.append(finding)
    return findings


# --- converting ---------------------------------------------------------------


def fix_dict_config(config: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A copy of ``config`` with every replaceable handler converted to its
    safelog class, every handler the doctor cannot judge routed through a
    safelog.QueueHandler, and a note for each handler left as it is.

    The queue handler takes the routed handler's name, so loggers and other
    handlers that name it keep working; the routed handler is renamed
    ``NAME_target`` and keeps its level, formatter and filters."""
    fixed = copy.deepcopy(dict(config))
    notes = []
    handlers = _handler_configs(fixed)
    findings = {finding.name: finding for finding in check_dict_config(config)}
    for name, handler_config in list(handlers.items()):
        finding = findings[name]
        if finding.fork_safe:
            continue
        if finding.route_through_queue:
            target = _unused_name(f"{name}_target", handlers)
            handlers[target] = handler_config
            handlers[name] = {"class": "safelog.QueueHandler", "handlers": [target]}
            continue
        if finding.replacement is None:
            notes.append(f"{name}: not converted: {finding.reason}")
            continue
        converted = dict(handler_config)
        key = "()" if "()" in converted else "class"
        converted[key] = finding.replacement
        if finding.class_path == "logging.handlers.QueueHandler":
            if "handlers" not in converted:
                notes.append(
                    f"{name}: not converted: a QueueHandler configured without "
                    "'handlers' (the names of its targets) has a listener the "
                    "doctor cannot see"
                )
                continue
            for stdlib_key in _STDLIB_QUEUE_ONLY_KEYS:
                converted.pop(stdlib_key, None)
        handlers[name] = converted
    fixed["handlers"] = handlers
    return fixed, notes


def _unused_name(wanted: str, taken: Mapping[str, object]) -> str:
    name, number = wanted, 1
    while name in taken:
        number += 1
        name = f"{wanted}{number}"
    return name


def fix_ini_config(text: str, source: str = "<ini>") -> tuple[str, list[str]]:
    """``text`` with the class of every replaceable handler converted, every
    other line (comments too) kept as it is, and the notes of what was not."""
    replacements: dict[str, str] = {}
    notes = []
    for finding in check_ini_config(text, source):
        if finding.fork_safe:
            continue
        if finding.replacement is None or finding.replacement == "safelog.QueueHandler":
            reason = finding.reason
            if finding.replacement is not None:
                reason = "fileConfig cannot name the targets of a queue handler"
            elif finding.route_through_queue:
                reason += (
                    "; in an .ini file, route it through a safelog.QueueHandler "
                    "by hand (see docs/doctor.md)"
                )
            notes.append(f"{finding.name}: not converted: {reason}")
            continue
        replacements[f"handler_{finding.name}"] = finding.replacement
    lines = []
    section = None
    for line in text.splitlines(keepends=True):
        header = re.match(r"\s*\[([^\]]+)\]", line)
        if header:
            section = header.group(1).strip()
        elif section in replacements:
            key = re.match(r"(\s*class\s*[=:]\s*)(\S.*?)(\s*)$", line, re.DOTALL)
            if key:
                line = f"{key.group(1)}{replacements[section]}{key.group(3)}"
        lines.append(line)
    return "".join(lines), notes


def _json_default(value: object) -> str:
    if value is sys.stderr or value is sys.__stderr__:
        return "ext://sys.stderr"
    if value is sys.stdout or value is sys.__stdout__:
        return "ext://sys.stdout"
    if isinstance(value, type) or callable(value):
        return _replacements_path(value)
    raise TypeError(f"cannot write {value!r} as JSON")


# --- the command --------------------------------------------------------------

#: Why ``--torture`` is refused, and what to use instead.
TORTURE_REMOVED = (
    "--torture was removed: it wrote test records to the configuration's own "
    "destinations (log files by absolute path, mail servers, sockets), which a "
    "check must never do.  To watch the fork hazard, run 'python -m safelog "
    "demo'; to test your own configuration under fork, follow 'Testing a "
    "configuration under fork' in docs/doctor.md"
)


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """Add the ``doctor`` command to ``commands``, the result of
    ``ArgumentParser.add_subparsers()``; it sets ``run`` to :func:`run`."""
    doctor: argparse.ArgumentParser = commands.add_parser(
        "doctor",
        help="check whether a logging configuration is fork-safe, and fix it",
        description=(
            "Print, for every handler of a logging configuration, whether it is "
            "fork-safe, why, and the way to make it so.  CONFIG is a dictConfig "
            "dict in a JSON file or at MODULE:ATTRIBUTE, a Python file setting "
            "logconfig_dict or LOGGING to a literal dict (gunicorn.conf.py, read "
            "without running it), or an .ini file for fileConfig; without "
            "CONFIG, --import MODULE inspects the configuration that importing "
            "MODULE sets up.  The doctor never writes to a configuration's "
            "destinations.  Exit status: 0 when every handler is fork-safe, 1 "
            "when one is not, 2 on a usage error."
        ),
    )
    add_arguments(doctor)
    doctor.set_defaults(run=run, doctor_parser=doctor)
    return doctor


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The doctor's arguments and options."""
    parser.add_argument(
        "config",
        nargs="?",
        metavar="CONFIG",
        help="a JSON file or MODULE:ATTRIBUTE holding a dictConfig dict, a "
        "Python file setting logconfig_dict or LOGGING, or an .ini file",
    )
    parser.add_argument(
        "--import",
        dest="import_module",
        metavar="MODULE",
        help="import MODULE (from the current directory too) and inspect the "
        "logging configuration it sets up",
    )
    parser.add_argument(
        "--fix",
        action="store_true",
        help="print the configuration with every replaceable handler converted "
        "to safelog and every other one routed through a safelog.QueueHandler",
    )
    # Kept only to refuse it with a message that says what to use instead.
    parser.add_argument("--torture", action="store_true", help=argparse.SUPPRESS)


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Run the doctor for parsed ``args``; return the exit status."""
    out = out if out is not None else sys.stdout
    parser: argparse.ArgumentParser | None = getattr(args, "doctor_parser", None)

    def usage_error(message: str) -> NoReturn:
        if parser is not None:
            parser.error(message)
        raise SystemExit(f"{PROG}: error: {message}")

    if args.torture:
        usage_error(TORTURE_REMOVED)
    if args.config is not None and args.import_module is not None:
        usage_error("give CONFIG or --import MODULE, not both")
    if args.config is None and args.import_module is None:
        usage_error("give CONFIG or --import MODULE")
    if args.import_module is not None:
        if args.fix:
            usage_error(
                "--fix needs CONFIG: a configuration set up by code has no file "
                "to convert (call safelog.install(queue=True) after it instead)"
            )
        return _run_live(args.import_module, out, usage_error)
    try:
        config = load_config(args.config)
        if args.fix:
            return _run_fix(config, out)
    except ConfigError as error:
        usage_error(str(error))
    return _report(config.check(), out)


def _run_live(module: str, out: TextIO, usage_error: Any) -> int:
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        importlib.import_module(module)
    except ImportError as error:
        usage_error(f"cannot import {module!r}: {error}")
    return _report(check_live_config(), out)


def summary(findings: Sequence[Finding]) -> str:
    """The last line of the report: how many handlers are not fork-safe."""
    total = len(findings)
    unsafe = sum(not finding.fork_safe for finding in findings)
    handlers = "handler" if total == 1 else "handlers"
    if not findings:
        return "no handlers: nothing to check"
    if not unsafe:
        return (
            f"the 1 {handlers} is fork-safe"
            if total == 1
            else (f"all {total} {handlers} are fork-safe")
        )
    verb = "is" if unsafe == 1 else "are"
    return f"{unsafe} of {total} {handlers} {verb} not fork-safe"


def _report(findings: Sequence[Finding], out: TextIO) -> int:
    for finding in findings:
        print(finding.line(), file=out)
    print(summary(findings), file=out)
    return 0 if all(finding.fork_safe for finding in findings) else 1


def _run_fix(config: LoadedConfig, out: TextIO) -> int:
    fixed, notes = config.fixed()
    out.write(fixed.text())
    for note in notes:
        print(f"{PROG}: {note}", file=sys.stderr)
    return 0 if all(finding.fork_safe for finding in fixed.check()) else 1
