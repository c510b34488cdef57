"""Every error a task raises reaches the terminal as one line and an exit code."""

from __future__ import annotations

from pathlib import Path

import pytest
from cautious.cli.terminal import MAX_LINE, clean_errors, console, one_line
from cautious.exceptions import ConfigError, SandboxError
from cautious.redaction import REDACTED, remember
from invoke.exceptions import Exit


def exit_of(error: BaseException) -> Exit:
    @clean_errors
    def task() -> None:
        raise error

    with pytest.raises(Exit) as raised:
        task()
    return raised.value


def test_bad_input_is_exit_2_and_a_failure_exit_1() -> None:
    assert exit_of(ConfigError("cluster.instances = -1 is not allowed")).code == 2
    assert exit_of(SandboxError("the engine went away")).code == 1


def test_an_unexpected_exception_is_one_line_naming_a_debug_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAUTIOUS_DEBUG_DIR", str(tmp_path))
    error = exit_of(KeyError("boom"))
    message = str(error.message)
    assert error.code == 1
    assert message.startswith("cautious: unexpected error (KeyError: 'boom'); the traceback is in")
    (log,) = tmp_path.glob("error-*.log")
    assert str(log) in message
    assert "Traceback (most recent call last)" in log.read_text()


def test_an_error_line_is_flat_clipped_and_free_of_secrets() -> None:
    remember(["planted-terminal-secret"])
    line = one_line("first\nsecond\tplanted-terminal-secret\x07" + "x" * 1000)
    assert line.startswith(f"first second {REDACTED}\\x07xx")
    assert len(line) == MAX_LINE


def test_a_deliberate_exit_of_a_task_is_redacted_too() -> None:
    remember(["planted-exit-secret"])
    error = exit_of(Exit("cautious: rollout rolled-back: log said planted-exit-secret", code=1))
    assert error.code == 1
    assert error.message == f"cautious: rollout rolled-back: log said {REDACTED}"


def test_the_console_never_prints_a_remembered_secret(capsys: pytest.CaptureFixture[str]) -> None:
    remember(["planted-console-secret"])
    console.print("the app said planted-console-secret")
    assert capsys.readouterr().err.strip() == f"the app said {REDACTED}"
