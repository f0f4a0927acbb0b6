"""Run a scenario in a child interpreter, with a hard deadline.

Every test that forks, or could hang, runs its code through :func:`run`: the
child interpreter gets a process group of its own, and when the deadline
passes that group alone is killed, so a deadlock fails the test with a clear
message instead of stalling the suite.  The machinery is safelog's own
harness (``safelog._harness``), which the demo uses too.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from collections.abc import Mapping
from typing import Any

import pytest

from safelog import _harness
from safelog._harness import Outcome, finish

__all__ = [
    "DEFAULT_TIMEOUT",
    "Outcome",
    "finish",
    "passed",
    "run",
    "run_json",
    "run_ok",
    "start",
]

#: Enough for every scenario on a loaded 2-core machine; a hang is far longer.
DEFAULT_TIMEOUT = 60.0


def start(
    code: str,
    *,
    env: Mapping[str, str | None] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    args: tuple[str, ...] = (),
) -> subprocess.Popen[str]:
    """Start ``code`` (dedented) in a new interpreter, in a process group of
    its own, with ``env`` applied to our environment (a value of None removes
    the variable); :func:`finish` waits for it.  For a test that acts while
    the scenario runs (stops a daemon, say); others call :func:`run`."""
    return _harness.start(["-c", textwrap.dedent(code), *args], env=env, cwd=cwd)


def run(
    code: str,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    env: Mapping[str, str | None] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    args: tuple[str, ...] = (),
) -> Outcome:
    """Run ``code`` (dedented) in a new interpreter; kill its process group
    if it is still running after ``timeout`` seconds.  Never raises for a
    hang: the caller decides (see :func:`run_ok`)."""
    return finish(start(code, env=env, cwd=cwd, args=args), timeout)


def passed(outcome: Outcome) -> Outcome:
    """``outcome``, unless the scenario hung or failed: then fail the test."""
    if outcome.hung:
        pytest.fail(f"deadlock: {outcome.describe()}", pytrace=False)
    if outcome.returncode != 0:
        pytest.fail(outcome.describe(), pytrace=False)
    return outcome


def run_ok(code: str, **options: object) -> Outcome:
    """Run ``code`` as :func:`run` does and fail the test unless it exits 0
    in time."""
    return passed(run(code, **options))  # type: ignore[arg-type]


def run_json(code: str, **options: object) -> Any:
    """Run ``code`` as :func:`run_ok` does and return the JSON value it
    printed on the last line of its stdout."""
    return json.loads(run_ok(code, **options).stdout.strip().splitlines()[-1])
