"""``python -m safelog demo``: the seed article's deadlock, shown in a few seconds.

Threads log through a handler on a buffered stream while the main thread forks
children that log too, once with the standard handler and once with
safelog's, each run in a child interpreter of its own (see ``_harness``).  The
exit status is 0 when every safelog run was clean, 1 otherwise; the standard
handler's result never affects it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from . import _harness
from ._handlers import FileHandler, StreamHandler
from ._harness import (
    FORK_INTERVAL,
    LOGGING_THREADS,
    OTHER_LINES_KEPT,
    RECORDS_PER_CHILD,
    ScenarioResult,
)

__all__ = ["add_parser", "run", "scenario_main"]

DEFAULT_FORKS = 50
DEFAULT_TIMEOUT = 2.0
#: Time a scenario interpreter may take beyond its forks and its timeout
#: (startup, counting) before the demo calls it hung.
SCENARIO_SLACK = 5.0

_RESULT_PREFIX = "SAFELOG-DEMO-RESULT "
_SCENARIO = (
    "import sys; from safelog._demo import scenario_main; scenario_main(sys.argv[1:])"
)

# A "stdlib" run imports safelog too (this module is part of it).  With no
# safelog handler, safelog's fork hook only takes logging's module lock, as
# logging's own hook does, so the run sees what a program without safelog sees.
_HANDLERS: dict[tuple[str, str], tuple[str, Callable[[Any], logging.Handler]]] = {
    ("stdlib", "stream"): ("stdlib logging.StreamHandler", logging.StreamHandler),
    ("safelog", "stream"): ("safelog.StreamHandler", StreamHandler),
    ("stdlib", "file"): ("stdlib logging.FileHandler", logging.FileHandler),
    ("safelog", "file"): ("safelog.FileHandler", FileHandler),
}


@dataclasses.dataclass(frozen=True)
class RunOutcome:
    """One scenario run as the demo saw it: a result, or why there is none."""

    library: str
    handler_kind: str
    timeout: float
    result: ScenarioResult | None
    problem: str | None = None
    output_tail: list[str] = dataclasses.field(default_factory=list)

    @property
    def clean(self) -> bool:
        return self.result is not None and self.result.clean


# --- command line -----------------------------------------------------------


def _bounded(
    convert: Callable[[str], Any], low: float, high: float, what: str, unit: str = ""
) -> Callable[[str], Any]:
    """An argparse ``type``: ``convert`` the text, from ``low`` to ``high``."""

    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not (math.isfinite(value) and low <= value <= high):
            raise argparse.ArgumentTypeError(
                f"must be from {low:g} to {high:g}{unit}, got {text}"
            )
        return value

    return parse


def add_parser(commands: Any) -> None:
    """Add the ``demo`` command to ``commands``, the result of
    ``ArgumentParser.add_subparsers()``; it sets ``run`` to :func:`run`."""
    demo: argparse.ArgumentParser = commands.add_parser(
        "demo",
        help="show, in a few seconds, forked children hang with the stdlib "
        "handler and log with safelog's",
        description=(
            "Threads log through a handler while the main thread forks children "
            "that log too, once with the stdlib handler and once with safelog's; "
            "report hung children and lost, duplicated or torn records.  Exit "
            "status 0 when every safelog run is clean, 1 otherwise."
        ),
    )
    demo.add_argument(
        "--forks",
        type=_bounded(int, 1, 1000, "a whole number"),
        default=DEFAULT_FORKS,
        metavar="N",
        help=f"children each run forks, {FORK_INTERVAL * 1000:g} ms apart "
        f"(default {DEFAULT_FORKS})",
    )
    demo.add_argument(
        "--timeout",
        type=_bounded(float, 0.1, 60, "seconds", " seconds"),
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help="how long a forked child may take before it is killed and counted "
        f"as hung (default {DEFAULT_TIMEOUT:g})",
    )
    demo.add_argument(
        "--handler",
        choices=("stream", "file", "both"),
        default="stream",
        help="StreamHandler on sys.stderr, FileHandler on a file, or both "
        "(default stream)",
    )
    demo.set_defaults(run=run)


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Run the demo as ``args`` say, report to ``out`` (default stdout), and
    return 0 when every safelog run was clean, 1 otherwise."""
    out = sys.stdout if out is None else out
    kinds = ("stream", "file") if args.handler == "both" else (args.handler,)
    print(
        f"{LOGGING_THREADS} threads log without pause through a handler on a "
        f"buffered stream while the main thread forks {args.forks} children; "
        f"each child logs {RECORDS_PER_CHILD} records and exits.",
        file=out,
    )
    width = max(len(label) for label, _ in _HANDLERS.values())
    outcomes: list[RunOutcome] = []
    with tempfile.TemporaryDirectory(prefix="safelog-demo-") as workdir:
        for kind in kinds:
            for library in ("stdlib", "safelog"):
                label = _HANDLERS[library, kind][0]
                print(f"  {label:<{width}} : ", end="", file=out)
                out.flush()  # the run takes seconds: show what is running
                outcome = _run_scenario_interpreter(
                    library, kind, args.forks, args.timeout, Path(workdir)
                )
                print(describe(outcome), file=out)
                for line in outcome.output_tail:
                    print(f"      | {line}", file=out)
                outcomes.append(outcome)
    print(file=out)
    print(explain(outcomes), file=out)
    return 0 if all(o.clean for o in outcomes if o.library == "safelog") else 1


def describe(outcome: RunOutcome) -> str:
    """One plain line: what happened to the children and their records."""
    result = outcome.result
    if result is None:
        return outcome.problem or "no result"
    if result.hung:
        lead = (
            f"{result.hung} of {result.forks} children hung "
            f"(killed after {outcome.timeout:g} s)"
        )
        counts = [f"{result.logged} logged"]
    else:
        lead = f"{result.logged} of {result.forks} children logged"
        counts = ["0 hung"]
    if result.crashed:
        counts.append(f"{result.crashed} crashed")
    counts += [
        f"{result.lost} lost",
        f"{result.duplicated} duplicated",
        f"{result.torn} torn",
    ]
    if result.unexpected:
        counts.append(f"{result.unexpected} records no one logged")
    if result.other_lines:
        counts.append(f"{result.other_lines} unexpected lines of output")
    return f"{lead}; {', '.join(counts)}"


def explain(outcomes: Sequence[RunOutcome]) -> str:
    """A few sentences on why the runs came out as they did."""
    stdlib = [o.result for o in outcomes if o.library == "stdlib" and o.result]
    sentences: list[str] = []
    if any(result.hung for result in stdlib):
        sentences.append(
            "Each hung child was forked while a logging thread was inside a "
            "write, holding the lock of the stream's io.BufferedWriter; the "
            "child inherits that lock still held, by a thread it does not have, "
            "and its first log call waits for it forever (CPython gh-84579)."
        )
    if any(result.duplicated or result.torn for result in stdlib):
        sentences.append(
            "Duplicated or torn records come from bytes that sat in the stream's "
            "buffer at the fork: parent and child each write their copy."
        )
    if not sentences:
        sentences.append(
            "The stdlib handler showed no defect this time: the hazard is a race "
            "(a child must be forked while a thread is inside a write), so it "
            "does not show on every run; try again or raise --forks."
        )
    if all(o.clean for o in outcomes if o.library == "safelog"):
        sentences.append(
            "safelog's handler waits briefly for the handler lock before a fork, "
            "and in the child writes straight to the file descriptor, never "
            "through the inherited buffer, so there is no lock to wait for and "
            "no byte to write twice."
        )
    else:
        sentences.append(
            "safelog's run was not clean: that is a bug in safelog; please "
            "report it with this output."
        )
    return "\n".join(sentences)


# --- one scenario, in a child interpreter -------------------------------------


def _run_scenario_interpreter(
    library: str, handler_kind: str, forks: int, timeout: float, workdir: Path
) -> RunOutcome:
    log_path = workdir / f"{library}-{handler_kind}.log"
    limit = forks * FORK_INTERVAL + timeout + SCENARIO_SLACK
    argv = [library, handler_kind, str(forks), repr(timeout), str(log_path)]
    # Append mode (O_APPEND): the scenario, its children and a FileHandler on
    # the same file each write at its end, never over one another.
    with open(log_path, "ab") as stderr_file:
        process = _harness.start(
            ["-c", _SCENARIO, *argv],
            # PYTHONUNBUFFERED makes sys.stderr's binary layer an unbuffered
            # FileIO, which has no lock and so no hazard; the demo shows the
            # usual default.  The records hold two-byte characters, which the
            # tally reads as UTF-8, whatever the locale or PYTHONIOENCODING.
            env={
                "PYTHONUNBUFFERED": None,
                "PYTHONUTF8": "1",
                "PYTHONIOENCODING": "utf-8",
            },
            stderr=stderr_file,
        )
    finished = _harness.finish(process, limit)
    result = None if finished.hung else _parse_result(finished.stdout)
    if result is not None:
        return RunOutcome(
            library, handler_kind, timeout, result, None, result.other_sample
        )
    if finished.hung:
        problem = f"the scenario itself hung (killed after {limit:g} s)"
    else:
        problem = (
            f"the scenario failed (exit status {finished.returncode}) without a result"
        )
    text = log_path.read_text(encoding="utf-8", errors="replace")
    tail = [line for line in text.splitlines() if not _harness.RECORD.fullmatch(line)]
    return RunOutcome(
        library, handler_kind, timeout, None, problem, tail[-OTHER_LINES_KEPT:]
    )


def _parse_result(stdout: str) -> ScenarioResult | None:
    for line in reversed(stdout.splitlines()):
        if line.startswith(_RESULT_PREFIX):
            try:
                return ScenarioResult(**json.loads(line[len(_RESULT_PREFIX) :]))
            except (TypeError, ValueError):
                return None
    return None


def scenario_main(argv: Sequence[str]) -> None:
    """Run one scenario and print its result line: the entry point of the
    demo's child interpreters, whose ``argv`` the demo writes."""
    library, handler_kind, forks, timeout, log = argv
    log_path = Path(log)
    # The stream handler writes to sys.stderr: the demo opened the log as it.
    destination = sys.stderr if handler_kind == "stream" else log_path
    handler = _HANDLERS[library, handler_kind][1](destination)
    result = _harness.run_scenario(
        handler, forks=int(forks), timeout=float(timeout), log_path=log_path
    )
    # Written only now, with every thread stopped: stdout is a buffered stream
    # too, and the children never touch it.
    print(_RESULT_PREFIX + json.dumps(dataclasses.asdict(result)), flush=True)
