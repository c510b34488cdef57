"""Shared helpers for the CI plugin suite's tests (GitHub actions and the Jenkins library).

The tools these tests drive (act, actionlint, check-jsonschema, shellcheck, groovy, a JDK 17)
are installed by ``.ci/run``. Without one of them a test skips locally with the reason, and
*fails* under CI=true, where a skipped check would pass silently.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ACTIONS = REPO / "actions"
WORKFLOWS = REPO / ".github" / "workflows"
EXAMPLES = ACTIONS / "examples"
JENKINS = ACTIONS / "jenkins"

# Where the suite is published; the reusable workflows and the examples refer to it by this name
# and the act tests map it onto this checkout with --local-repository. On main the reusable
# workflows name the actions @main (a release commit names them @vX.Y.Z); the examples, what users
# copy, name the moving major tag.
SUITE_REPOSITORY = "your-org/cautious"
SUITE_REF = "main"
SUITE_MAJOR = "v0"
STUBS = Path(__file__).resolve().parent / "stubs"


def in_ci() -> bool:
    return os.environ.get("CI") == "true"


def missing(reason: str) -> None:
    """Skip locally, fail loudly under CI=true."""
    if in_ci():
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)


def need(tool: str, install: str) -> str:
    """The path of a command-line tool, or skip/fail saying how to install it."""
    found = shutil.which(tool)
    if found is None:
        missing(f"{tool} is not installed ({install})")
    assert found is not None
    return found


def workflow_files() -> list[Path]:
    """The reusable/own workflows and the adoption examples (all are GitHub workflows)."""
    return sorted(WORKFLOWS.glob("*.yml")) + sorted((EXAMPLES / "github").glob("*.yml"))


def action_files() -> list[Path]:
    return sorted(ACTIONS.glob("*/action.yml"))


# A release as scripts/release cuts it, in a clone of this repository's HEAD.
RELEASE = "0.2.0"
RELEASE_TAG = f"v{RELEASE}"
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "cautious-test",
    "GIT_AUTHOR_EMAIL": "test@invalid",
    "GIT_COMMITTER_NAME": "cautious-test",
    "GIT_COMMITTER_EMAIL": "test@invalid",
}


def git(repo: Path, *args: str) -> str:
    """Run git in `repo` (with a test identity for commits and tags); its stdout."""
    result = subprocess.run(
        ["git", *args],
        cwd=repo,
        env={**os.environ, **GIT_IDENTITY},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"git {' '.join(args)}: {result.stderr}"
    return result.stdout.strip()


def release_script(clone: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The clone's own scripts/release."""
    return subprocess.run(
        [sys.executable, str(clone / "scripts" / "release"), *args],
        cwd=clone,
        env={**os.environ, **GIT_IDENTITY},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="session")
def released(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clone of HEAD in which `scripts/release 0.2.0` cut v0.2.0 (HEAD is back on @main)."""
    clone = tmp_path_factory.mktemp("released") / "cautious"
    git(REPO, "clone", "-q", "--no-local", str(REPO), str(clone))
    cut = release_script(clone, RELEASE)
    assert cut.returncode == 0, cut.stderr
    return clone


@pytest.fixture(scope="session")
def release_archive(released: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tag as GitHub serves it to a runner for `uses: …@v0.2.0`: `git archive`, no .git."""
    folder = tmp_path_factory.mktemp("archive") / "cautious"
    folder.mkdir()
    archive = subprocess.run(
        ["git", "archive", "--format=tar", RELEASE_TAG],
        cwd=released,
        capture_output=True,
        timeout=120,
        check=True,
    )
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(folder, filter="data")
    return folder
