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
import tomllib
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


def _as_tester(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a command with a test identity for git commits and tags."""
    return subprocess.run(
        argv,
        cwd=cwd,
        env={**os.environ, **GIT_IDENTITY},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def git(repo: Path, *args: str) -> str:
    """Run git in `repo`; its stdout."""
    result = _as_tester(["git", *args], repo)
    assert result.returncode == 0, f"git {' '.join(args)}: {result.stderr}"
    return result.stdout.strip()


def release_script(clone: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The clone's own scripts/release."""
    return _as_tester([sys.executable, str(clone / "scripts" / "release"), *args], clone)


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


# Packages the release workflow and the actions install, kept between runs as a pip cache
# would be: a clean install downloads about 80 packages, minutes on this machine's network.
WHEELHOUSE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cautious-tests"


def _release_requirements() -> list[str]:
    """What the release workflow installs: both distributions' dependencies and build systems,
    and its own tools."""
    requirements = ["build", "twine"]
    for pyproject in (REPO / "pyproject.toml", REPO / "chaos" / "pyproject.toml"):
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        requirements += data["build-system"]["requires"] + data["project"]["dependencies"]
    return requirements


@pytest.fixture(scope="session")
def wheelhouse() -> Path:
    """Every package the release workflow installs, downloaded once and kept between runs."""
    folder = WHEELHOUSE / f"py{sys.version_info.major}.{sys.version_info.minor}"
    download = [sys.executable, "-m", "pip", "download", "-q", "--prefer-binary", "-d", str(folder)]
    requirements = _release_requirements()
    offline = subprocess.run(
        [*download, "--no-index", "--find-links", str(folder), *requirements],
        capture_output=True,
        timeout=300,
        check=False,
    )
    if offline.returncode != 0:  # the first run, or a requirement changed: fetch what is missing
        fetched = subprocess.run(
            [*download, *requirements], capture_output=True, text=True, timeout=1800, check=False
        )
        assert fetched.returncode == 0, fetched.stderr[-3000:]
    return folder


def offline_pip(wheelhouse: Path) -> dict[str, str]:
    """The environment that makes pip install from the wheelhouse alone."""
    return {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheelhouse)}
