"""The handlers a ``safelog.QueueHandler`` sends to, given as objects or names.

``dictConfig`` and ``fileConfig`` name a queue handler's targets rather than
pass them, so this module wires names to handlers: it looks a name up in the
configuration being built (``dictConfig``) or in logging's registry of named
handlers, holds the handler it finds, refuses targets that lead back to the
queue handler (a record would go round for ever), and keeps the queue handler
after its targets in the list ``logging.shutdown()`` closes, so that it writes
what it holds before they close.  The doctor checks configurations with the
same path search (:func:`path_back`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any, TypeVar, Union, cast

__all__ = ["Target", "Targets", "cycle_message", "path_back", "shut_down_after"]

Target = Union[logging.Handler, str]
Node = TypeVar("Node")


def path_back(
    first_steps: Iterable[tuple[str, Node]],
    steps_of: Callable[[Node], Iterable[tuple[str, Node]]],
    is_start: Callable[[Node], bool],
    key: Callable[[Node], Hashable] = id,
) -> list[str] | None:
    """The labels of a path of steps, beginning with one of ``first_steps``
    and ending at a node for which ``is_start`` holds, or None when there is
    none.  ``steps_of(node)`` gives a node's ``(label, node)`` steps; each
    node (told apart by ``key``) is entered once, so the search ends."""
    seen: set[Hashable] = set()

    def walk(label: str, node: Node) -> list[str] | None:
        if is_start(node):
            return [label]
        if key(node) in seen:
            return None
        seen.add(key(node))
        for step in steps_of(node):
            path = walk(*step)
            if path is not None:
                return [label, *path]
        return None

    for step in first_steps:
        path = walk(*step)
        if path is not None:
            return path
    return None


def cycle_message(name: str | None, path: list[str]) -> str:
    start = repr(name) if name else "this safelog.QueueHandler"
    return f"target handlers form a cycle: {' -> '.join([start, *path])}"


# A node of the target graph: a handler or a dictConfig entry not built yet,
# with the table of configured handlers its own names are looked up in.
_Node = tuple[object, Union[Mapping[str, Any], None]]


class Targets:
    """The target handlers of one queue handler (its *owner*).

    A handler object is a target as it is.  A name is looked up in the
    configuration that ``dictConfig`` is building, if the owner is built by
    it, else in logging's registry of named handlers; the handler found is
    held from then on (the registry holds handlers weakly).  A name not
    found is looked up again on each call of :meth:`handlers` and reported
    once through the owner's ``handleError``; a name whose handler leads
    back to the owner is left out for good, reported once.

    Not thread-safe: the owner calls it from the one thread that consumes
    its queue, and at construction.
    """

    def __init__(
        self, specs: tuple[Target, ...], names: object, queue_class: type
    ) -> None:
        self.specs = specs
        self._queue_class = queue_class
        # dictConfig passes the names as a ConvertingList whose configurator
        # holds the handlers it builds.  Keeping that table until every name
        # is bound keeps alive a target built after the owner that no logger
        # refers to.
        self._configured: Mapping[str, Any] | None = _configured_handlers(names)
        self._bound: dict[str, logging.Handler] = {}
        self._refused: dict[str, str] = {}
        self._reported: set[str] = set()
        self._all: tuple[logging.Handler, ...] | None = None

    def check(self, owner: logging.Handler, names: object) -> None:
        """From ``dictConfig``: raise ``ValueError`` for a name that the
        configuration does not have, or targets that lead back to ``owner``.

        ``names`` is the owner's ``handlers`` argument, a ConvertingList that
        knows the configurator and the entry being configured, which is how
        the owner learns its own name before it has one."""
        configured = self._configured
        if configured is not None:
            for spec in self.specs:
                if isinstance(spec, str) and spec not in configured:
                    known = ", ".join(map(repr, sorted(configured, key=str)))
                    raise ValueError(
                        f"unknown target handler {spec!r}: this configuration's "
                        f"handlers are {known}"
                    )
        own_name, own_entry = _entry_being_configured(names, configured)
        resolve = getattr(getattr(names, "configurator", None), "resolve", None)
        path = path_back(
            self._steps(configured),
            lambda node: _steps_of(node, resolve, self._queue_class),
            lambda node: (
                node[0] is owner or (own_entry is not None and node[0] is own_entry)
            ),
            key=lambda node: id(node[0]),
        )
        if path is not None:
            raise ValueError(cycle_message(own_name, path))

    def bind_existing(self, owner: logging.Handler) -> None:
        """Bind the names that handlers have now, reporting none missing (a
        configuration may build them later)."""
        for spec in self.specs:
            if isinstance(spec, str) and spec not in self._bound:
                self.bind(owner, spec)
        if all(
            isinstance(spec, logging.Handler) or spec in self._bound
            for spec in self.specs
        ):
            self._all = tuple(
                spec if isinstance(spec, logging.Handler) else self._bound[spec]
                for spec in self.specs
            )
            self._configured = None

    def known(self) -> tuple[logging.Handler, ...]:
        """The targets known now, binding nothing: safe from any thread."""
        found = self._all
        if found is not None:
            return found
        given = [spec for spec in self.specs if isinstance(spec, logging.Handler)]
        return (*given, *list(self._bound.values()))

    def handlers(self, owner: logging.Handler) -> tuple[logging.Handler, ...]:
        """The targets that exist now, binding names found since last time."""
        found = self._all
        if found is not None:
            return found
        handlers: list[logging.Handler] = []
        missing = False
        for spec in self.specs:
            if isinstance(spec, logging.Handler):
                handlers.append(spec)
                continue
            handler = self._bound.get(spec) or self.bind(owner, spec)
            if handler is not None:
                handlers.append(handler)
                continue
            refused = self._refused.get(spec)
            missing = missing or refused is None
            if spec not in self._reported:
                self._reported.add(spec)
                _report_missing(owner, spec, refused)
        if missing:
            return tuple(handlers)
        self._all = found = tuple(handlers)
        self._configured = None
        return found

    def bind(self, owner: logging.Handler, name: str) -> logging.Handler | None:
        """The handler named ``name``, held from now on; None while no handler
        has that name, and for good if it would lead back to ``owner``."""
        if name in self._refused:
            return None
        handler = _entry_named(name, self._configured)
        if not isinstance(handler, logging.Handler):
            return None
        first: list[tuple[str, _Node]] = [(repr(name), (handler, None))]
        path = path_back(
            first,
            lambda node: _steps_of(node, None, self._queue_class),
            lambda node: node[0] is owner,
            key=lambda node: id(node[0]),
        )
        if path is not None:
            self._refused[name] = cycle_message(owner.name, path)
            return None
        self._bound[name] = handler
        shut_down_after(owner, handler)
        return handler

    def sends_to(self, handler: logging.Handler) -> bool:
        """Whether ``handler`` is one of these targets (given or bound)."""
        return any(spec is handler for spec in self.specs) or any(
            bound is handler for bound in self._bound.values()
        )

    def _steps(self, configured: Mapping[str, Any] | None) -> list[tuple[str, _Node]]:
        steps: list[tuple[str, _Node]] = []
        for spec in self.specs:
            if isinstance(spec, logging.Handler):
                label = repr(spec.name) if spec.name else repr(spec)
                steps.append((label, (spec, None)))
                continue
            bound = self._bound.get(spec)
            entry = _entry_named(spec, configured) if bound is None else bound
            if entry is not None:
                steps.append((repr(spec), (entry, configured)))
        return steps


def _steps_of(
    node: _Node, resolve: Callable[[str], Any] | None, queue_class: type
) -> list[tuple[str, _Node]]:
    """The targets of a node that exist: those of a queue handler, or the
    names of a dictConfig entry not built yet whose class is a queue handler
    (looked up with ``resolve``, the configurator's).  Other handlers have
    none."""
    target, configured = node
    targets = getattr(target, "_targets", None)
    if isinstance(targets, Targets):
        return targets._steps(targets._configured)
    if not isinstance(target, dict) or resolve is None:
        return []
    factory = dict.get(target, "class") or dict.get(target, "()")
    if isinstance(factory, str):
        try:
            factory = resolve(factory)
        except Exception:  # dictConfig reports it when it builds that entry
            return []
    names = dict.get(target, "handlers")
    if not (
        isinstance(factory, type)
        and issubclass(factory, queue_class)
        and isinstance(names, (list, tuple))
    ):
        return []
    steps: list[tuple[str, _Node]] = []
    for name in names:
        if isinstance(name, str):
            entry = _entry_named(name, configured)
            if entry is not None:
                steps.append((repr(name), (entry, configured)))
    return steps


def shut_down_after(handler: logging.Handler, target: logging.Handler) -> None:
    """Put ``handler`` after ``target`` in the list ``logging.shutdown()``
    flushes and closes newest first, so that ``target`` is still open when
    ``handler`` writes what it holds into it.

    ``dictConfig`` builds handlers in name order and closes the old ones
    through ``logging.shutdown()`` when it configures again: a target named
    after its queue handler is newer, and would be closed first."""
    refs: list[Any] | None = getattr(logging, "_handlerList", None)
    if refs is None:
        return
    # Not under logging's module lock: this runs on the queue's consumer,
    # which a dictConfig holding that lock may be waiting for (it flushes the
    # queue handler).  remove() and append() are each atomic; a dictConfig
    # that empties the list meanwhile has shut everything down already.
    mine = None
    for ref in list(refs):
        referent = ref()
        if referent is handler:
            mine = ref
        elif referent is target:
            if mine is None:
                return  # already after it
            try:
                refs.remove(mine)
            except ValueError:
                return
            refs.append(mine)
            break
    else:
        return
    # A queue handler that sends to this one must stay after it in turn
    # (a -> b -> file: b moving after file moves a after b).
    for ref in list(refs):
        sender = ref()
        targets = getattr(sender, "_targets", None)
        if (
            sender is not handler
            and isinstance(targets, Targets)
            and targets.sends_to(handler)
        ):
            shut_down_after(cast(logging.Handler, sender), handler)


def _configured_handlers(names: object) -> Mapping[str, Any] | None:
    configurator = getattr(names, "configurator", None)
    config = getattr(configurator, "config", None)
    if not isinstance(config, dict):
        return None
    # dict.get: no conversion, just the table dictConfig fills in.
    configured = dict.get(config, "handlers")
    return configured if isinstance(configured, dict) else None


def _entry_named(name: str, configured: Mapping[str, Any] | None) -> object:
    """What ``name`` stands for: a handler, a dictConfig entry not built yet
    (a dict), or None."""
    if configured is not None and name in configured:
        # dict.get: no conversion.  A name this configuration has is never
        # looked up in the registry, which may hold an older handler of it.
        return dict.get(cast("dict[str, Any]", configured), name)
    registry: Mapping[str, logging.Handler] = getattr(logging, "_handlers", {})
    return registry.get(name)


def _entry_being_configured(
    names: object, configured: Mapping[str, Any] | None
) -> tuple[str | None, object]:
    """From dictConfig: the name and the entry of the handler whose
    ``handlers`` argument is ``names``, else ``(None, None)``.

    dictConfig converts the handler's entry, then its ``handlers`` list, and
    records each one's ``parent`` and ``key`` as it does so."""
    entry = getattr(names, "parent", None)
    name = getattr(entry, "key", None)
    if (
        configured is None
        or not isinstance(name, str)
        or dict.get(cast("dict[str, Any]", configured), name) is not entry
    ):
        return None, None
    return name, entry


def _report_missing(owner: logging.Handler, name: str, refused: str | None) -> None:
    if refused is not None:
        message = f"{refused}; records are not sent to {name!r}"
    else:
        message = (
            f"no handler named {name!r} exists; records go to the other "
            f"targets until it does (fileConfig: list it before the queue "
            f"handler in [handlers] keys)"
        )
    try:
        raise ValueError(f"safelog.QueueHandler: {message}")
    except ValueError:
        owner.handleError(
            logging.makeLogRecord({"name": "safelog", "msg": "(no record)"})
        )
