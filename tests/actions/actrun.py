"""Running a workflow with `act` on this host, offline, and reading what it reported.

``run_act`` runs one workflow file with ``-P ubuntu-latest=-self-hosted`` (jobs run on the host)
and ``--json`` (one event per line). Every ``your-org/cautious@REF`` the workflow (or the
workflows and actions it calls) names must be mapped onto a folder with ``suite``: offline, act
cannot fetch anything, so a reference to an unmapped ref fails the run. The actions GitHub's
services need are mapped onto stubs that fail if they run (the suite skips them under act).
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.actions.conftest import STUBS, SUITE_REPOSITORY

__all__ = ["ActRun", "run_act"]

ACT_TIMEOUT_S = 600  # a rollout under load takes 2 min on a quiet machine, 4+ on a busy one
TIMED_OUT = -1  # the return code of a run that was stopped at its timeout
SERVICE_STUBS = {
    "actions/upload-artifact@v4": STUBS / "upload-artifact",
    "actions/download-artifact@v4": STUBS / "download-artifact",
    "actions/cache@v4": STUBS / "cache",
}


@dataclass(frozen=True)
class ActRun:
    """What act reported: its exit code, the JSON events and their messages as one log."""

    returncode: int
    events: list[dict[str, Any]]
    log: str

    def of(self, command: str) -> list[dict[str, Any]]:
        return [event for event in self.events if event.get("command") == command]

    def errors(self) -> dict[str, str]:
        """title → message of every ::error workflow command."""
        return {
            str((event.get("kvPairs") or {}).get("title", "")): str(event.get("arg", ""))
            for event in self.of("error")
        }

    def error_properties(self) -> dict[str, dict[str, str]]:
        """title → the properties (file, line, …) of every ::error workflow command."""
        return {
            str((event.get("kvPairs") or {}).get("title", "")): dict(event.get("kvPairs") or {})
            for event in self.of("error")
        }

    def job_results(self) -> dict[str, str]:
        return {
            str(event.get("jobID")): str(event["jobResult"])
            for event in self.events
            if "jobResult" in event
        }

    def output_lines(self) -> list[str]:
        return [
            str(event.get("msg", "")).strip() for event in self.events if event.get("raw_output")
        ]

    def step_outputs(self, step_id: str) -> dict[str, str]:
        """The outputs a step of the job set (for a composite action: the action's outputs)."""
        return {
            str(event["name"]): str(event.get("arg", ""))
            for event in self.of("set-output")
            if event.get("stepID") == [step_id]
        }

    def summaries(self) -> list[str]:
        """What each step appended to $GITHUB_STEP_SUMMARY."""
        return [str(event["content"]) for event in self.of("summary")]


def run_act(
    act: str,
    workflow: Path,
    *,
    cwd: Path,
    suite: dict[str, Path],
    tmp: Path,
    event: dict[str, Any] | None = None,
    timeout_s: int = ACT_TIMEOUT_S,
    env: dict[str, str] | None = None,
) -> ActRun:
    """Run `act push` on `workflow` in repository `cwd`; `suite` maps refs onto folders.

    The jobs run on this host with its environment (without CAUTIOUS_* variables), plus `env`.
    """
    argv = [act, "push", "-W", str(workflow), "-P", "ubuntu-latest=-self-hosted"]
    for ref, folder in suite.items():
        argv += ["--local-repository", f"{SUITE_REPOSITORY}@{ref}={folder}"]
    for action, stub in SERVICE_STUBS.items():
        argv += ["--local-repository", f"{action}={stub}"]
    if event is not None:
        payload = tmp / "event.json"
        payload.write_text(json.dumps(event), encoding="utf-8")
        argv += ["-e", str(payload)]
    argv += [
        "--action-cache-path",
        str(tmp / "act-cache"),
        "--action-offline-mode",
        "--no-cache-server",
        "--json",
    ]
    host = {key: value for key, value in os.environ.items() if not key.startswith("CAUTIOUS_")}
    try:
        result = subprocess.run(
            argv,
            cwd=cwd,
            env={**host, **(env or {})},
            capture_output=True,
            timeout=timeout_s,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        returncode, stdout, stderr = result.returncode, result.stdout, result.stderr
    except subprocess.TimeoutExpired as late:  # keep what act said so far: where it got stuck
        returncode, stdout = TIMED_OUT, late.stdout or b""
        stderr = (late.stderr or b"") + f"\nact ran past {timeout_s} s".encode()
    events = []
    for line in stdout.decode(errors="replace").splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    log = "\n".join(str(event.get("msg", "")).rstrip() for event in events)
    return ActRun(returncode, events, log + stderr.decode(errors="replace"))
