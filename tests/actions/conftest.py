"""Shared helpers for the CI plugin suite's tests (GitHub actions and the Jenkins library).

The tools these tests drive (act, actionlint, check-jsonschema, shellcheck, groovy, a JDK 17)
are installed by ``.ci/run``. Without one of them a test skips locally with the reason, and
*fails* under CI=true, where a skipped check would pass silently.
"""

from __future__ import annotations

import os
import shutil
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
