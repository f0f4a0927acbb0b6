"""``python -m safelog demo`` and ``python -m safelog``'s command line."""

from __future__ import annotations

import argparse
import io

import pytest

import safelog
import scenario
from safelog import _demo
from safelog.__main__ import main


def test_demo_reports_both_runs_and_safelog_is_clean() -> None:
    """The demo runs the stdlib and safelog handlers, stream and file, reports
    one line each, and exits 0 because every safelog child logged cleanly,
    under a non-UTF-8 PYTHONIOENCODING too."""
    outcome = scenario.run(
        "import sys; from safelog.__main__ import main; sys.exit(main())",
        # A child that logs and exits takes milliseconds; 3 s leaves room
        # for a stalled machine.  Four runs, each bounded by forks x 0.02 s +
        # the timeout + 5 s of slack.
        args=("demo", "--handler=both", "--forks=10", "--timeout=3"),
        # Records hold two-byte characters: the demo's children write them
        # as UTF-8 whatever the environment says.
        env={"PYTHONIOENCODING": "latin-1", "PYTHONUTF8": "0"},
        timeout=60,
    )

    assert not outcome.hung, outcome.describe()
    assert outcome.returncode == 0, outcome.describe()
    lines = outcome.stdout.splitlines()
    clean = "10 of 10 children logged; 0 hung, 0 lost, 0 duplicated, 0 torn"
    for handler in ("StreamHandler", "FileHandler"):
        safelog_lines = [
            line for line in lines if line.startswith(f"  safelog.{handler} ")
        ]
        assert [line.partition(" : ")[2] for line in safelog_lines] == [clean]
        # The stdlib's result is a race; only its line's presence is certain.
        assert (
            sum(line.startswith(f"  stdlib logging.{handler}") for line in lines) == 1
        )
    assert "safelog's handler waits briefly for the handler lock" in outcome.stdout


def _result(**changes: object) -> _demo.ScenarioResult:
    fields: dict[str, object] = {
        "forks": 5,
        "logged": 5,
        "hung": 0,
        "crashed": 0,
        "records": 15,
        "lost": 0,
        "duplicated": 0,
        "torn": 0,
        "other_lines": 0,
        "other_sample": [],
    }
    fields.update(changes)
    return _demo.ScenarioResult(**fields)  # type: ignore[arg-type]


def test_describe_leads_with_hung_children() -> None:
    """A run with hung children says how many, and after how long they were
    killed."""
    outcome = _demo.RunOutcome("stdlib", "stream", 2.0, _result(logged=3, hung=2))

    assert _demo.describe(outcome) == (
        "2 of 5 children hung (killed after 2 s); 3 logged, 0 lost, "
        "0 duplicated, 0 torn"
    )


def test_describe_counts_records_no_one_logged() -> None:
    """A record in the log that no child or thread logged is named: a run
    called unclean always shows why."""
    outcome = _demo.RunOutcome("safelog", "file", 2.0, _result(unexpected=2))

    assert _demo.describe(outcome) == (
        "5 of 5 children logged; 0 hung, 0 lost, 0 duplicated, 0 torn, "
        "2 records no one logged"
    )


@pytest.mark.parametrize(
    "safelog_result",
    [_result(duplicated=1), _result(logged=4, hung=1), None],
    ids=["duplicated", "hung", "no result"],
)
def test_explain_admits_an_unclean_safelog_run(
    safelog_result: _demo.ScenarioResult | None,
) -> None:
    """Any defect in a safelog run, or no result at all, is called a bug."""
    outcomes = [
        _demo.RunOutcome("stdlib", "stream", 2.0, _result()),
        _demo.RunOutcome("safelog", "stream", 2.0, safelog_result, "it hung"),
    ]

    text = _demo.explain(outcomes)

    assert "safelog's run was not clean" in text
    assert "The stdlib handler showed no defect this time" in text


def test_help_lists_the_demo_command(capsys: pytest.CaptureFixture[str]) -> None:
    """``python -m safelog --help`` is argparse help naming ``demo``."""
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])

    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m safelog [-h] [--version] COMMAND ...")
    assert "    demo " in out


def test_version_option_prints_the_package_version(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``python -m safelog --version`` prints ``safelog.__version__``."""
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])

    assert exit_info.value.code == 0
    assert f"safelog {safelog.__version__}\n" == capsys.readouterr().out


def test_demo_help_lists_its_options(capsys: pytest.CaptureFixture[str]) -> None:
    """``python -m safelog demo --help`` documents --forks, --timeout and
    --handler."""
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--help"])

    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for option in ("--forks N", "--timeout SECONDS", "--handler {stream,file,both}"):
        assert option in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "the following arguments are required: COMMAND"),
        (["demo", "--forks=0"], "--forks: must be from 1 to 1000, got 0"),
        (["demo", "--timeout=x"], "--timeout: expected seconds, got 'x'"),
    ],
)
def test_bad_arguments_fail_with_a_usage_error(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Missing commands and bad values exit 2 with a specific message."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)

    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_run_returns_1_when_safelog_is_not_clean(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The exit status follows safelog's runs only, not the stdlib's."""

    def fake_run(
        library: str, handler_kind: str, forks: int, timeout: float, workdir: object
    ) -> _demo.RunOutcome:
        result = _result(logged=4, hung=1)  # both runs show a hung child
        return _demo.RunOutcome(library, handler_kind, timeout, result)

    monkeypatch.setattr(_demo, "_run_scenario_interpreter", fake_run)
    out = io.StringIO()

    status = _demo.run(argparse.Namespace(forks=5, timeout=2.0, handler="stream"), out)

    assert status == 1
    assert "safelog's run was not clean" in out.getvalue()
