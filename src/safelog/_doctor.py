"""``python -m safelog doctor``: is a logging configuration fork-safe?

The doctor reads a configuration (a ``dictConfig`` dictionary from a JSON file
or a ``module:attribute``, an ``.ini`` file for ``fileConfig``, or the live
configuration a module sets up when imported) and prints one line per handler:
fork-safe or not, why, and the safelog class that replaces it.  The verdicts
and hazards come from the table in ``_replacements``.

``--fix`` prints the configuration with every replaceable handler converted.
``--torture`` builds the configuration in a child interpreter and forks
children while threads log through each handler, then counts hung children
and lost, duplicated and torn records.

Exit status: 0 when every handler is fork-safe (and the torture run, if any,
was clean), 1 otherwise, 2 for a usage error or a configuration that cannot
be read.
"""

from __future__ import annotations

import argparse
import ast
import collections
import configparser
import contextlib
import copy
import dataclasses
import importlib
import json
import logging
import logging.config
import logging.handlers
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

import safelog

from . import _replacements
from ._targets import path_back

__all__ = [
    "Finding",
    "add_parser",
    "check_dict_config",
    "check_ini_config",
    "check_live_config",
    "fix_dict_config",
    "fix_ini_config",
    "run",
    "torture_main",
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

    def line(self) -> str:
        """One line for the report."""
        verdict = "fork-safe" if self.fork_safe else "NOT fork-safe"
        text = f"{self.name}: {verdict}: {self.class_path}: {self.reason}"
        if self.replacement is not None:
            text += f"; use {self.replacement}"
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
            )
    return Finding(name, shown, False, "not a handler the doctor knows: it cannot tell")


def _public_path(cls: type) -> str:
    """``safelog.FileHandler`` rather than ``safelog._handlers.FileHandler``."""
    if getattr(safelog, cls.__name__, None) is cls:
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
        return Finding(name, path, False, f"cannot import it: {error}")
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
    return isinstance(builder, type) and issubclass(builder, safelog.QueueHandler)


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


def load_dict_config(source: str) -> dict[str, Any]:
    """The ``dictConfig`` dictionary in a JSON file, or at ``module:attribute``."""
    if _is_module_reference(source):
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
    try:
        loaded = json.loads(Path(source).read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(f"cannot read {source!r}: {error.strerror}") from error
    except ValueError as error:
        raise ConfigError(f"{source!r} is not valid JSON: {error}") from error
    if not isinstance(loaded, dict):
        raise ConfigError(
            f"{source!r} holds a JSON {type(loaded).__name__}, not an object"
        )
    return loaded


def _is_module_reference(source: str) -> bool:
    return re.fullmatch(
        r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*", source
    ) is not None and not os.path.exists(source)


def config_kind(source: str) -> str:
    """``"dict"`` or ``"ini"``: how ``source`` configures logging."""
    if _is_module_reference(source):
        return "dict"
    try:
        text = Path(source).read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot read {source!r}: {error.strerror}") from error
    return "dict" if text.lstrip().startswith("{") else "ini"


def _handler_configs(config: Mapping[str, Any]) -> dict[str, Any]:
    handlers = config.get("handlers", {})
    if not isinstance(handlers, Mapping):
        raise ConfigError("'handlers' must be a dict of handler configurations")
    return dict(handlers)


def check_dict_config(config: Mapping[str, Any]) -> list[Finding]:
    """One finding per handler of a ``dictConfig`` dictionary, in name order.

    A ``safelog.QueueHandler`` whose target names are missing from the
    configuration, or lead back to it, is reported as ``dictConfig`` would
    fail on it."""
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
    return findings


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


def _live_handlers() -> Iterator[tuple[str, logging.Handler]]:
    loggers: list[tuple[str, logging.Logger]] = [("root", logging.getLogger())]
    for logger_name, logger in sorted(logging.root.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger):
            loggers.append((logger_name, logger))
    seen: set[int] = set()
    pending: list[tuple[str, logging.Handler]] = []
    for logger_name, logger in loggers:
        for index, handler in enumerate(logger.handlers):
            pending.append((handler.name or f"{logger_name}[{index}]", handler))
    while pending:
        name, handler = pending.pop(0)
        if id(handler) in seen:
            continue
        seen.add(id(handler))
        yield name, handler
        for index, target in enumerate(_targets_of(handler)):
            pending.append((target.name or f"{name}->target[{index}]", target))


def _targets_of(handler: logging.Handler) -> list[logging.Handler]:
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
    """One finding per handler reachable from the loggers of this process."""
    return [judge_class(name, type(handler)) for name, handler in _live_handlers()]


# --- converting ---------------------------------------------------------------


def fix_dict_config(config: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A copy of ``config`` with every replaceable handler converted to its
    safelog class, and a note for each handler that could not be."""
    fixed = copy.deepcopy(dict(config))
    notes = []
    handlers = _handler_configs(fixed)
    findings = {finding.name: finding for finding in check_dict_config(config)}
    for name, handler_config in handlers.items():
        finding = findings[name]
        if finding.fork_safe:
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


# --- the torture run ----------------------------------------------------------

TORTURE_FORKS = 20
TORTURE_CHILD_TIMEOUT = 2.0
_TORTURE_THREADS = 2
_TORTURE_RECORDS_PER_CHILD = 3
_TORTURE_FORK_INTERVAL = 0.02
_TORTURE_SLACK = 20.0


@dataclasses.dataclass
class TortureTally:
    """What a torture run did to one handler."""

    name: str
    forks: int
    hung: int = 0
    crashed: int = 0
    records: int = 0
    lost: int = 0
    duplicated: int = 0
    torn: int = 0
    problem: str | None = None

    @property
    def clean(self) -> bool:
        return self.problem is None and not (
            self.hung or self.crashed or self.lost or self.duplicated or self.torn
        )

    def line(self) -> str:
        """One line for the report."""
        verdict = "clean" if self.clean else "NOT clean"
        if self.problem and not self.forks:
            return f"{self.name}: torture {verdict}: {self.problem}"
        text = (
            f"{self.name}: torture {verdict}: {self.forks} forks, {self.hung} hung, "
            f"{self.crashed} crashed; {self.records} records, {self.lost} lost, "
            f"{self.duplicated} duplicated, {self.torn} torn"
        )
        if self.problem:
            text += f" ({self.problem})"
        return text


def _configure(kind: str, source: str) -> None:
    if kind == "dict":
        logging.config.dictConfig(load_dict_config(source))
    elif kind == "ini":
        logging.config.fileConfig(source, disable_existing_loggers=False)
    else:
        importlib.import_module(source)


def _start_stdlib_listeners(handlers: Sequence[logging.Handler]) -> list[Any]:
    # dictConfig (3.12+) makes a QueueListener but leaves starting it to the
    # application; start it as the application would.
    started = []
    for handler in handlers:
        listener = getattr(handler, "listener", None)
        if (
            isinstance(listener, logging.handlers.QueueListener)
            and getattr(listener, "_thread", None) is None
        ):
            listener.start()
            started.append(listener)
    return started


def torture_main(argv: Sequence[str]) -> int:
    """The torture run, inside the child interpreter; writes a JSON result."""
    parser = argparse.ArgumentParser(prog="safelog-doctor-torture")
    parser.add_argument("--kind", choices=("dict", "ini", "import"), required=True)
    parser.add_argument("--source", required=True)
    parser.add_argument("--nonce", required=True)
    parser.add_argument("--result", type=Path, required=True)
    parser.add_argument("--forks", type=int, default=TORTURE_FORKS)
    parser.add_argument("--timeout", type=float, default=TORTURE_CHILD_TIMEOUT)
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*fork")
    try:
        _configure(args.kind, args.source)
    except Exception as error:
        args.result.write_text(json.dumps({"error": _error_chain(error)}))
        return 0
    top_level = [
        handler
        for logger in [logging.getLogger()]
        + [
            found
            for found in logging.root.manager.loggerDict.values()
            if isinstance(found, logging.Logger)
        ]
        for handler in logger.handlers
    ]
    unique: dict[int, tuple[str, logging.Handler]] = {}
    for name, handler in _live_handlers():
        if any(handler is top for top in top_level):
            unique[id(handler)] = (name, handler)
    handlers = list(unique.values())
    files = sorted(
        {
            os.path.abspath(str(handler.baseFilename))
            for _, handler in _live_handlers()
            if hasattr(handler, "baseFilename")
        }
    )
    listeners = _start_stdlib_listeners([handler for _, handler in handlers])
    phases = []
    for index, (name, handler) in enumerate(handlers):
        phases.append(
            _torture_one(index, name, handler, args.nonce, args.forks, args.timeout)
        )
    for listener in listeners:
        listener.stop()
    logging.shutdown()
    args.result.write_text(json.dumps({"files": files, "phases": phases}))
    return 0


def _error_chain(error: BaseException) -> str:
    """``ValueError: Unable to configure handler 'q', because TypeError: ...``"""
    parts = []
    current: BaseException | None = error
    while current is not None:
        parts.append(f"{type(current).__name__}: {current}")
        current = current.__cause__ or current.__context__
    return ", because ".join(parts)


def _torture_one(
    index: int,
    name: str,
    handler: logging.Handler,
    nonce: str,
    forks: int,
    timeout: float,
) -> dict[str, Any]:
    logger = logging.getLogger(f"safelog.doctor.torture.{index}")
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    stop = threading.Event()
    counts = [0] * _TORTURE_THREADS

    def log_until_stopped(thread: int) -> None:
        while not stop.is_set():
            logger.critical(
                "<<rec %s %d:t%d.%d>>", nonce, index, thread, counts[thread]
            )
            counts[thread] += 1

    threads = [
        threading.Thread(target=log_until_stopped, args=(thread,), daemon=True)
        for thread in range(_TORTURE_THREADS)
    ]
    for thread in threads:
        thread.start()
    deadlines: dict[int, float] = {}
    children: dict[int, int] = {}
    for child in range(forks):
        time.sleep(_TORTURE_FORK_INTERVAL)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the forked child
            _log_in_child_and_exit(logger, nonce, index, child)
        children[pid] = child
        deadlines[pid] = time.monotonic() + timeout
    stop.set()
    for thread in threads:
        thread.join()
    statuses = _wait_for(deadlines)
    logged = [children[pid] for pid, status in statuses.items() if status == 0]
    return {
        "name": name,
        "forks": forks,
        "hung": sum(status is None for status in statuses.values()),
        "crashed": sum(status not in (0, None) for status in statuses.values()),
        "threads": counts,
        "children": logged,
    }


def _log_in_child_and_exit(
    logger: logging.Logger, nonce: str, index: int, child: int
) -> NoReturn:
    status = 0
    try:
        for record in range(_TORTURE_RECORDS_PER_CHILD):
            logger.critical("<<rec %s %d:c%d.%d>>", nonce, index, child, record)
        logging.shutdown()  # as an interpreter at exit: flush every handler
    except BaseException:
        status = 1
    os._exit(status)


def _wait_for(deadlines: dict[int, float]) -> dict[int, int | None]:
    statuses: dict[int, int | None] = {}
    while len(statuses) < len(deadlines):
        for pid, deadline in deadlines.items():
            if pid in statuses:
                continue
            done, wait_status = os.waitpid(pid, os.WNOHANG)
            if done:
                statuses[pid] = os.waitstatus_to_exitcode(wait_status)
            elif time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                statuses[pid] = None
        time.sleep(0.01)
    return statuses


def torture(
    kind: str, source: str, *, forks: int = TORTURE_FORKS
) -> list[TortureTally]:
    """Run the torture in a child interpreter (own process group, killed on
    timeout) in a temporary directory, and count what happened per handler."""
    nonce = uuid.uuid4().hex[:8]
    with tempfile.TemporaryDirectory(prefix="safelog-doctor-") as work:
        result_path = Path(work, "result.json")
        if kind in ("dict", "ini") and not _is_module_reference(source):
            source = os.path.abspath(source)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [os.getcwd(), env.get("PYTHONPATH")])
        )
        command = [
            sys.executable,
            "-c",
            "import sys; from safelog._doctor import torture_main; "
            "sys.exit(torture_main(sys.argv[1:]))",
            f"--kind={kind}",
            f"--source={source}",
            f"--nonce={nonce}",
            f"--result={result_path}",
            f"--forks={forks}",
        ]
        process = subprocess.Popen(
            command,
            cwd=work,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group: we kill only that
        )
        limit = _TORTURE_SLACK + 10 * (
            forks * _TORTURE_FORK_INTERVAL + TORTURE_CHILD_TIMEOUT
        )
        try:
            stdout, stderr = process.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):  # it ended just now
                os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            return [
                TortureTally(
                    "configuration", 0, problem=f"hung, killed after {limit:g} s"
                )
            ]
        if process.returncode != 0 or not result_path.exists():
            tail = stderr.decode(errors="replace").strip().splitlines()[-1:]
            return [
                TortureTally(
                    "configuration",
                    0,
                    problem="the child interpreter failed: "
                    + (tail[0] if tail else f"exit status {process.returncode}"),
                )
            ]
        result = json.loads(result_path.read_text())
        if "error" in result:
            return [
                TortureTally(
                    "configuration",
                    0,
                    problem=f"it fails in the child interpreter: {result['error']}",
                )
            ]
        outputs = [stdout.decode(errors="replace"), stderr.decode(errors="replace")]
        for path in _output_files(Path(work), result["files"], result_path):
            outputs.append(path.read_text(encoding="utf-8", errors="replace"))
    return [
        _tally(index, phase, nonce, outputs)
        for index, phase in enumerate(result["phases"])
    ]


def _output_files(work: Path, files: Sequence[str], result_path: Path) -> list[Path]:
    found = {path for path in work.rglob("*") if path.is_file() and path != result_path}
    found.update(Path(name) for name in files if Path(name).is_file())
    return sorted(found)


def _tally(
    index: int, phase: Mapping[str, Any], nonce: str, outputs: Sequence[str]
) -> TortureTally:
    tally = TortureTally(
        str(phase["name"]),
        int(phase["forks"]),
        hung=int(phase["hung"]),
        crashed=int(phase["crashed"]),
    )
    expected = {
        f"t{thread}.{number}"
        for thread, count in enumerate(phase["threads"])
        for number in range(count)
    }
    expected |= {
        f"c{child}.{record}"
        for child in phase["children"]
        for record in range(_TORTURE_RECORDS_PER_CHILD)
    }
    tally.records = len(expected)
    record = re.compile(rf"<<rec {nonce} {index}:([tc]\d+\.\d+)>>")
    piece = re.compile(rf"<<|>>|{nonce} {index}:")
    reached = 0
    for text in outputs:
        found: collections.Counter[str] = collections.Counter()
        torn = 0
        for line in text.splitlines():
            matches = record.findall(line)
            if len(matches) == 1 and len(piece.findall(line)) == 3:
                found[matches[0]] += 1
            elif f"{nonce} {index}:" in line:
                torn += 1
        if not found and not torn:
            continue  # this output is not one this handler writes to
        reached += 1
        tally.lost += len(expected - set(found))
        tally.duplicated += sum(count - 1 for count in found.values() if count > 1)
        tally.torn += torn
    if not reached:
        tally.lost = len(expected)
        tally.problem = "no record reached any file or the standard streams"
    return tally


# --- the command --------------------------------------------------------------


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """Add the ``doctor`` command to ``commands``, the result of
    ``ArgumentParser.add_subparsers()``; it sets ``run`` to :func:`run`."""
    doctor: argparse.ArgumentParser = commands.add_parser(
        "doctor",
        help="check whether a logging configuration is fork-safe, and fix it",
        description=(
            "Print, for every handler of a logging configuration, whether it is "
            "fork-safe, why, and the safelog class that replaces it.  CONFIG is "
            "a dictConfig dict in a JSON file or at MODULE:ATTRIBUTE, or an .ini "
            "file for fileConfig; without CONFIG, --import MODULE inspects the "
            "configuration that importing MODULE sets up.  Exit status: 0 when "
            "every handler is fork-safe, 1 when one is not, 2 on a usage error."
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
        help="a JSON file or MODULE:ATTRIBUTE holding a dictConfig dict, "
        "or an .ini file for fileConfig",
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
        "to safelog (JSON for a dict, the same .ini otherwise)",
    )
    parser.add_argument(
        "--torture",
        action="store_true",
        help="also build the configuration in a child interpreter, fork "
        "children while threads log through each handler, and report hung "
        "children and lost, duplicated and torn records; it runs in a temporary "
        "directory, so relative file names land there, but files named by an "
        "absolute path get the test records",
    )


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Run the doctor for parsed ``args``; return the exit status."""
    out = out if out is not None else sys.stdout
    parser: argparse.ArgumentParser | None = getattr(args, "doctor_parser", None)

    def usage_error(message: str) -> NoReturn:
        if parser is not None:
            parser.error(message)
        raise SystemExit(f"{PROG}: error: {message}")

    if args.config is not None and args.import_module is not None:
        usage_error("give CONFIG or --import MODULE, not both")
    if args.config is None and args.import_module is None:
        usage_error("give CONFIG or --import MODULE")
    if args.fix and args.torture:
        usage_error("--fix prints a configuration; run --torture on its output")
    if args.import_module is not None:
        if args.fix:
            usage_error(
                "--fix needs CONFIG: a configuration set up by code has no file "
                "to convert (call safelog.install() after it instead)"
            )
        return _run_live(args.import_module, args.torture, out, usage_error)
    try:
        kind = config_kind(args.config)
        if args.fix:
            return _run_fix(kind, args.config, out)
        if kind == "dict":
            findings = check_dict_config(load_dict_config(args.config))
        else:
            findings = check_ini_config(
                Path(args.config).read_text(encoding="utf-8"), args.config
            )
    except ConfigError as error:
        usage_error(str(error))
    return _report(
        findings, out, torture_of=(kind, args.config) if args.torture else None
    )


def _run_live(module: str, with_torture: bool, out: TextIO, usage_error: Any) -> int:
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        importlib.import_module(module)
    except ImportError as error:
        usage_error(f"cannot import {module!r}: {error}")
    return _report(
        check_live_config(),
        out,
        torture_of=("import", module) if with_torture else None,
    )


def _report(
    findings: Sequence[Finding], out: TextIO, *, torture_of: tuple[str, str] | None
) -> int:
    for finding in findings:
        print(finding.line(), file=out)
    unsafe = sum(not finding.fork_safe for finding in findings)
    if not findings:
        print("no handlers: nothing to check", file=out)
    elif unsafe:
        print(f"{unsafe} of {len(findings)} handlers are not fork-safe", file=out)
    else:
        print(f"all {len(findings)} handlers are fork-safe", file=out)
    clean = True
    if torture_of is not None:
        for tally in torture(*torture_of):
            print(tally.line(), file=out)
            clean = clean and tally.clean
    return 0 if unsafe == 0 and clean else 1


def _run_fix(kind: str, source: str, out: TextIO) -> int:
    if kind == "dict":
        fixed, notes = fix_dict_config(load_dict_config(source))
        try:
            text = json.dumps(fixed, indent=2, default=_json_default) + "\n"
        except TypeError as error:
            raise ConfigError(
                f"cannot print the converted configuration: {error}"
            ) from error
        findings = check_dict_config(fixed)
    else:
        fixed_text, notes = fix_ini_config(
            Path(source).read_text(encoding="utf-8"), source
        )
        text = fixed_text
        findings = check_ini_config(fixed_text, source)
    out.write(text)
    for note in notes:
        print(f"{PROG}: {note}", file=sys.stderr)
    return 0 if all(finding.fork_safe for finding in findings) else 1
