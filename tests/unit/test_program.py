"""The `cautious` command keeps the exit-code contract where Invoke's parser would not."""

from __future__ import annotations

import subprocess
import sys

import pytest
from cautious.cli.program import program


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """Run `cautious ARGV`; its exit code and what it printed on stderr."""
    with pytest.raises(SystemExit) as ended:
        program.run(["cautious", *argv])
    return int(ended.value.code or 0), capsys.readouterr().err.strip()


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (["no-such-task"], "No idea what 'no-such-task' is!"),
        (["deploy", "--no-such-flag"], "No idea what '--no-such-flag' is!"),
        (["--no-such-core-flag"], "No idea what '--no-such-core-flag' is!"),
        (["load", "--duration"], "Flag '--duration' needed value and was not given one!"),
        (["deploy", "--dry-run", "--claim"], "Flag '--claim' needed value"),
        (["deploy", "--claim", "--dry-run"], "Flag '--claim' needed value"),
        (["--help", "no-such-task"], "No idea what 'no-such-task' is!"),
        (["--dry", "deploy"], "--dry only echoes shell commands"),  # would deploy for real
        (["--config", "x.yaml", "deploy"], "--config goes after the task"),
    ],
)
def test_a_parser_error_is_bad_input_in_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], problem: str
) -> None:
    code, printed = run(capsys, *argv)
    assert code == 2
    assert printed.startswith("cautious: ") and problem in printed
    assert "\n" not in printed and len(printed) <= 300


def test_an_empty_config_path_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    code, printed = run(capsys, "config", "--config", "")
    assert (code, printed) == (2, "cautious: --config takes the path of a file, not ''")


CAUTIOUS = "from cautious.cli.program import program; program.run()"


def test_task_help_names_what_each_flag_does() -> None:
    # Its own process, as a user runs it: Invoke pops help texts while it parses, so a second
    # parse in one process finds none (the flag checks before the parse work on a copy).
    shown = subprocess.run(
        [sys.executable, "-c", CAUTIOUS, "deploy", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "override a claim, NAME=VALUE (repeatable)" in shown
    assert "print the plan and change nothing" in shown
