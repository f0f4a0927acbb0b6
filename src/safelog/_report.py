"""What ``safelog.install()`` tells its caller: the report, and the draft the
parts of ``install()`` write it in.

Each handler has exactly one entry, with the loggers that hold it and
everything said about it; a global that changed (``os._exit``,
``logging.lastResort``) has an entry with no loggers.  The headline counts
handlers, never globals.
"""

from __future__ import annotations

import dataclasses

__all__ = ["InstallReport", "ReportDraft", "ReportEntry"]


@dataclasses.dataclass(frozen=True)
class ReportEntry:
    """One thing ``install()`` changed or left alone, where, and why."""

    subject: str
    """The handler's repr, or the global that was changed (``os._exit``)."""
    loggers: tuple[str, ...]
    """Names of the loggers whose handler list holds it ("root" for the
    root logger); empty for a global."""
    reason: str

    def __str__(self) -> str:
        where = f" on {', '.join(map(repr, self.loggers))}" if self.loggers else ""
        return f"{self.subject}{where}: {self.reason}"


@dataclasses.dataclass(frozen=True)
class InstallReport:
    """What ``safelog.install()`` changed and what it left alone, and why."""

    already_installed: bool
    """True when safelog was installed already, and this call changed
    nothing."""
    changed: tuple[ReportEntry, ...] = ()
    left_alone: tuple[ReportEntry, ...] = ()

    def __str__(self) -> str:
        if self.already_installed:
            lines = ["safelog is already installed; nothing changed."]
        else:
            converted = sum(1 for entry in self.changed if entry.loggers)
            kept = sum(1 for entry in self.left_alone if entry.loggers)
            lines = [
                f"safelog installed: {converted} of {converted + kept} handlers "
                f"converted, {kept} left alone."
            ]
        for title, entries in (
            ("changed", self.changed),
            ("left alone", self.left_alone),
        ):
            if entries:
                lines.append(f"{title}:")
                lines.extend(f"  {entry}" for entry in entries)
        return "\n".join(lines)


class ReportDraft:
    """The report while ``install()`` writes it: entries in the order they
    are added.  Not thread-safe: one ``install()`` call owns it."""

    def __init__(self) -> None:
        self._changed: list[ReportEntry] = []
        self._left_alone: list[ReportEntry] = []

    def changed(self, subject: str, loggers: tuple[str, ...], reason: str) -> None:
        self._changed.append(ReportEntry(subject, loggers, reason))

    def left_alone(self, subject: str, loggers: tuple[str, ...], reason: str) -> None:
        self._left_alone.append(ReportEntry(subject, loggers, reason))

    def add_to_every_handler(self, note: str) -> None:
        """Append ``note`` to the reason of each handler's entry, converted or
        not, so that the handler keeps its one entry."""
        for entries in (self._changed, self._left_alone):
            entries[:] = [
                dataclasses.replace(entry, reason=f"{entry.reason}; {note}")
                if entry.loggers
                else entry
                for entry in entries
            ]

    def finish(self) -> InstallReport:
        return InstallReport(
            already_installed=False,
            changed=tuple(self._changed),
            left_alone=tuple(self._left_alone),
        )
