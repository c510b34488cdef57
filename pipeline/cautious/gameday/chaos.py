"""One experiment through the plain ``chaos`` CLI, in its own process, with a hard deadline.

Running ``python -m chaostoolkit run`` rather than calling chaoslib in-process means:

- it is exactly what a user runs by hand (same code, same journal), and chaoslib gets the main
  thread of its own process, which it needs for its signal handlers;
- a wedged experiment cannot hang the game day: past its deadline the process group gets SIGINT
  (chaoslib then plays the rollbacks), then SIGKILL;
- rollbacks are always played (``--rollback-strategy always``), whatever happened.

The process writes into the experiment's folder: ``journal.json``, ``chaostoolkit.log``,
``chaos-output.txt`` (forwarded line by line to the console as it comes), and whatever the
experiment's activities leave there (``cautious_out_dir``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from importlib import metadata
from pathlib import Path

from cautious.exceptions import PrerequisiteError
from cautious.files import LineFollower
from cautious.gameday.suite import SuiteEntry

__all__ = ["EXTENSION", "check_chaostoolkit", "run_chaos"]

EXTENSION = "chaostoolkit-cautious"  # the distribution whose activities the experiments name

_INTERRUPT_GRACE_S = 240.0  # SIGINT → chaoslib plays the rollbacks (a restore is a rollout)
_KILL_WAIT_S = 30.0
_POLL_S = 0.5
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def check_chaostoolkit() -> None:
    """The ``chaos`` CLI and the extension the experiments use must be installed before a game
    day starts (exit 2 otherwise); neither is imported here."""
    if importlib.util.find_spec("chaostoolkit") is None:
        raise PrerequisiteError(
            "the Chaos Toolkit is not installed: run `pip install chaostoolkit`"
        )
    try:
        metadata.distribution(EXTENSION)
    except metadata.PackageNotFoundError:
        raise PrerequisiteError(
            f"the Chaos Toolkit extension ({EXTENSION}) is not installed: run "
            "`pip install -e ./chaos` (after `pip install -e .`), or `scripts/install`"
        ) from None


def run_chaos(
    entry: SuiteEntry,
    folder: Path,
    *,
    variables: Mapping[str, str],
    env: Mapping[str, str],
    cwd: Path,
    say: Callable[[str], None],
) -> str | None:
    """Run ``chaos run`` on ``entry``'s experiment with ``--var`` for each of ``variables``
    (the entry's own vars win); None when it ended by itself, else what went wrong with the
    process (its deadline, or an exit code chaoslib never uses)."""
    command = [
        sys.executable,
        "-m",
        "chaostoolkit",
        "--no-version-check",
        "--log-file",
        str(folder / "chaostoolkit.log"),
        "--settings",
        str(folder / "chaostoolkit-settings.yaml"),  # absent: no user settings leak in
        "run",
        "--journal-path",
        str(folder / "journal.json"),
        "--rollback-strategy",
        "always",
    ]
    for key, value in {**variables, **entry.vars}.items():
        command += ["--var", f"{key}={value}"]
    command.append(str(entry.path))
    output_path = folder / "chaos-output.txt"
    with output_path.open("wb") as output:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    follower = LineFollower(output_path)

    def forward() -> None:
        for line in follower.new_lines():
            line = _ANSI.sub("", line).strip()
            if line:
                say(f"  {line}")

    deadline = time.monotonic() + entry.timeout_s
    while process.poll() is None and time.monotonic() < deadline:
        forward()
        time.sleep(_POLL_S)
    problem = None
    if process.poll() is None:
        say(f"{entry.name}: past its {entry.timeout_s:g} s deadline; interrupting it")
        problem = f"the experiment ran past its {entry.timeout_s:g} s deadline and was stopped"
        _interrupt(process)
    forward()
    if problem is None and process.returncode not in (0, 1):
        problem = f"the chaos process exited with {process.returncode} (see chaos-output.txt)"
    return problem


def _interrupt(process: subprocess.Popen[bytes]) -> None:
    """SIGINT the process group (chaoslib plays the rollbacks), SIGKILL it past the grace."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(timeout=_INTERRUPT_GRACE_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=_KILL_WAIT_S)
