"""Run a scenario in a child interpreter, with a hard deadline.

Every test that forks, or could hang, runs its code through :func:`run`: the
child interpreter gets a process group of its own, and when the deadline
passes that group alone is killed, so a deadlock fails the test with a clear
message instead of stalling the suite.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Mapping

import pytest

#: Enough for every scenario on a loaded 2-core machine; a hang is far longer.
DEFAULT_TIMEOUT = 60.0


@dataclasses.dataclass
class Outcome:
    """What a scenario did: its exit status and output, or that it hung."""

    returncode: int | None
    stdout: str
    stderr: str
    hung: bool
    timeout: float

    def describe(self) -> str:
        status = (
            f"hung (killed after {self.timeout:g} s)"
            if self.hung
            else f"exit status {self.returncode}"
        )
        return (
            f"scenario {status}\n--- stdout (tail) ---\n{self.stdout[-3000:]}"
            f"\n--- stderr (tail) ---\n{self.stderr[-3000:]}"
        )


def child_env(overrides: Mapping[str, str | None] | None = None) -> dict[str, str]:
    """The environment for a child interpreter: ours, with ``overrides``
    applied (a value of None removes the variable)."""
    env = dict(os.environ)
    for name, value in (overrides or {}).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def start(
    code: str,
    *,
    env: Mapping[str, str | None] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    args: tuple[str, ...] = (),
) -> subprocess.Popen[str]:
    """Start ``code`` (dedented) in a new interpreter, in a process group of
    its own; :func:`finish` waits for it.  For a test that acts while the
    scenario runs (stops a daemon, say); others call :func:`run`."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=child_env(env),
        cwd=cwd,
        text=True,
        errors="replace",
        start_new_session=True,  # its own process group: we kill only that
    )


def finish(process: subprocess.Popen[str], timeout: float) -> Outcome:
    """Wait for a scenario :func:`start` started; kill its process group if
    it is still running after ``timeout`` seconds."""
    try:
        stdout, stderr = process.communicate(timeout=timeout)
        return Outcome(process.returncode, stdout, stderr, False, timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):  # it ended just now
            os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        return Outcome(None, stdout, stderr, True, timeout)


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
