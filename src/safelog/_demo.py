"""``python -m safelog demo``: the seed article's deadlock, shown in a few seconds.

Threads log through a handler on a buffered stream while the main thread forks
children that log too.  The scenario runs twice, each time in a child
interpreter of its own (own process group, killed as a group on timeout): once
with the standard handler and once with safelog's.  Each forked child that
does not exit within the timeout is killed and counted as hung; every record
carries a unique id, so records lost, written twice or torn are counted too.

The demo's exit status is 0 when every safelog run was clean, 1 otherwise; the
standard handler's result never affects it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from . import _harness
from ._handlers import FileHandler, StreamHandler
from ._harness import (
    FORK_INTERVAL,
    LOGGING_THREADS,
    OTHER_LINES_KEPT,
    RECORDS_PER_CHILD,
    ScenarioResult,
)

__all__ = ["add_arguments", "add_parser", "run", "scenario_main"]

DEFAULT_FORKS = 50
DEFAULT_TIMEOUT = 2.0
LIBRARIES = ("stdlib", "safelog")
HANDLER_KINDS = ("stream", "file")

#: Time a scenario interpreter may take beyond its forks and its timeout
#: (startup, counting) before the demo calls it hung.
SCENARIO_SLACK = 5.0

_RESULT_PREFIX = "SAFELOG-DEMO-RESULT "

_LABELS = {
    ("stdlib", "stream"): "stdlib logging.StreamHandler",
    ("stdlib", "file"): "stdlib logging.FileHandler",
    ("safelog", "stream"): "safelog.StreamHandler",
    ("safelog", "file"): "safelog.FileHandler",
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
    def label(self) -> str:
        return _LABELS[self.library, self.handler_kind]

    @property
    def clean(self) -> bool:
        return self.result is not None and self.result.clean


# --- command line -----------------------------------------------------------


def _fork_count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a whole number, got {text!r}"
        ) from None
    if not 1 <= value <= 1000:
        raise argparse.ArgumentTypeError(f"must be from 1 to 1000, got {value}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not math.isfinite(value) or not 0.1 <= value <= 60:
        raise argparse.ArgumentTypeError(f"must be from 0.1 to 60 seconds, got {text}")
    return value


def add_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Add the ``demo`` command to ``commands``, the result of
    ``ArgumentParser.add_subparsers()``; it sets ``run`` to :func:`run`."""
    demo = commands.add_parser(
        "demo",
        help="show, in a few seconds, forked children hang with the stdlib "
        "handler and log with safelog's",
        description=(
            "Threads log through a handler on a buffered stream while the main "
            "thread forks children that log too: once with the stdlib handler "
            "and once with safelog's, each in a child interpreter with a "
            "timeout.  Report hung children and lost, duplicated or torn "
            "records.  Exit status 0 when every safelog run is clean, 1 "
            "otherwise; the stdlib's result does not count."
        ),
    )
    add_arguments(demo)
    demo.set_defaults(run=run)
    return demo


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``demo`` options to ``parser``."""
    parser.add_argument(
        "--forks",
        type=_fork_count,
        default=DEFAULT_FORKS,
        metavar="N",
        help=f"children each run forks, {FORK_INTERVAL * 1000:g} ms apart "
        f"(default {DEFAULT_FORKS})",
    )
    parser.add_argument(
        "--timeout",
        type=_seconds,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help="how long a forked child may take before it is killed and counted "
        f"as hung (default {DEFAULT_TIMEOUT:g})",
    )
    parser.add_argument(
        "--handler",
        choices=("stream", "file", "both"),
        default="stream",
        help="StreamHandler on sys.stderr, FileHandler on a file, or both "
        "(default stream)",
    )


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Run the demo as ``args`` say, report to ``out`` (default stdout), and
    return 0 when every safelog run was clean, 1 otherwise."""
    out = sys.stdout if out is None else out
    kinds = HANDLER_KINDS if args.handler == "both" else (args.handler,)
    forks: int = args.forks
    timeout: float = args.timeout
    print(
        f"{LOGGING_THREADS} threads log without pause through a handler on a "
        f"buffered stream while the main thread forks {forks} children; each "
        f"child logs {RECORDS_PER_CHILD} records and exits.",
        file=out,
    )
    width = max(len(_LABELS[pair]) for pair in _LABELS)
    outcomes: list[RunOutcome] = []
    with tempfile.TemporaryDirectory(prefix="safelog-demo-") as workdir:
        for kind in kinds:
            for library in LIBRARIES:
                print(f"  {_LABELS[library, kind]:<{width}} : ", end="", file=out)
                out.flush()  # the run takes seconds: show what is running
                outcome = _run_scenario_interpreter(
                    library, kind, forks, timeout, Path(workdir)
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
    killed = f"killed after {outcome.timeout:g} s"
    if result.hung:
        lead = f"{result.hung} of {result.forks} children hung ({killed})"
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
    if result.other_lines:
        counts.append(f"{result.other_lines} unexpected lines of output")
    return f"{lead}; {', '.join(counts)}"


def explain(outcomes: Sequence[RunOutcome]) -> str:
    """A few sentences on why the runs came out as they did."""
    stdlib = [o for o in outcomes if o.library == "stdlib"]
    sentences: list[str] = []
    if any(o.result and o.result.hung for o in stdlib):
        sentences.append(
            "Each hung child was forked while a logging thread was inside a "
            "write, holding the lock of the stream's io.BufferedWriter; the "
            "child inherits that lock still held, by a thread it does not have, "
            "and its first log call waits for it forever (CPython gh-84579)."
        )
    if any(o.result and (o.result.duplicated or o.result.torn) for o in stdlib):
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


# --- the demo side: one scenario interpreter ---------------------------------


def _run_scenario_interpreter(
    library: str, handler_kind: str, forks: int, timeout: float, workdir: Path
) -> RunOutcome:
    log_path = workdir / f"{library}-{handler_kind}.log"
    limit = forks * FORK_INTERVAL + timeout + SCENARIO_SLACK
    # Append mode (O_APPEND): the scenario, its children and a FileHandler on
    # the same file each write at its end, never over one another.
    with open(log_path, "ab") as stderr_file:
        process = _harness.start(
            [
                "-c",
                "import sys; from safelog._demo import scenario_main; "
                "sys.exit(scenario_main(sys.argv[1:]))",
                f"--library={library}",
                f"--handler={handler_kind}",
                f"--forks={forks}",
                f"--timeout={timeout!r}",
                f"--log={log_path}",
            ],
            # PYTHONUNBUFFERED makes sys.stderr's binary layer an unbuffered
            # FileIO, which has no lock and so no hazard; the demo shows the
            # usual default.
            env={"PYTHONUNBUFFERED": None},
            stderr=stderr_file,
        )
    finished = _harness.finish(process, limit)

    def outcome(problem: str | None, result: ScenarioResult | None) -> RunOutcome:
        tail = [] if result else _unexpected_lines(log_path)[-OTHER_LINES_KEPT:]
        if result and result.other_lines:
            tail = result.other_sample
        return RunOutcome(library, handler_kind, timeout, result, problem, tail)

    if finished.hung:
        return outcome(f"the scenario itself hung (killed after {limit:g} s)", None)
    result = _parse_result(finished.stdout)
    if result is None:
        return outcome(
            f"the scenario failed (exit status {finished.returncode}) without a result",
            None,
        )
    return outcome(None, result)


def _parse_result(stdout: str) -> ScenarioResult | None:
    for line in reversed(stdout.splitlines()):
        if line.startswith(_RESULT_PREFIX):
            try:
                return ScenarioResult(**json.loads(line[len(_RESULT_PREFIX) :]))
            except (TypeError, ValueError):
                return None
    return None


def _unexpected_lines(log_path: Path) -> list[str]:
    try:
        text = log_path.read_bytes().decode("utf-8", "replace")
    except OSError:
        return []
    return [line for line in text.splitlines() if not _harness.RECORD.fullmatch(line)]


# --- the scenario side: runs in the child interpreter -------------------------


def scenario_main(argv: Sequence[str]) -> int:
    """Run one scenario as ``argv`` says and print its result line; the
    entry point of the demo's child interpreters, not for direct use."""
    parser = argparse.ArgumentParser(prog="safelog-demo-scenario")
    parser.add_argument("--library", choices=LIBRARIES, required=True)
    parser.add_argument("--handler", choices=HANDLER_KINDS, required=True)
    parser.add_argument("--forks", type=_fork_count, required=True)
    parser.add_argument("--timeout", type=_seconds, required=True)
    parser.add_argument("--log", type=Path, required=True)
    args = parser.parse_args(argv)
    result = _harness.run_scenario(
        _make_handler(args.library, args.handler, args.log),
        forks=args.forks,
        timeout=args.timeout,
        log_path=args.log,
    )
    # Written only now, with every thread stopped: stdout is a buffered stream
    # too, and the children never touch it.
    print(_RESULT_PREFIX + json.dumps(dataclasses.asdict(result)), flush=True)
    return 0


def _make_handler(library: str, handler_kind: str, log_path: Path) -> logging.Handler:
    # A "stdlib" run imports safelog too (this module is part of it).  With no
    # safelog handler, safelog's fork hook only takes logging's module lock,
    # as logging's own hook does, so the run sees what a program without
    # safelog sees.
    if handler_kind == "stream":
        # sys.stderr is the log file: the demo opened it as our stderr.
        if library == "safelog":
            return StreamHandler(sys.stderr)
        return logging.StreamHandler(sys.stderr)
    if library == "safelog":
        return FileHandler(log_path)
    return logging.FileHandler(log_path)
