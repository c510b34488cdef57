"""The adoption snippets in docs/ci.md and the README are the files the other tests run.

A snippet is marked ``<!-- file: PATH -->`` on the line before its fenced block; the block must
be exactly that file, so the README cannot drift from what act and the Groovy harness execute.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.actions.conftest import ACTIONS, REPO

MARKED = re.compile(r"<!-- file: (\S+) -->\n```[a-z]*\n(.*?)\n```", re.DOTALL)
ADOPTION_SNIPPETS = {
    "actions/examples/github/sandbox-gate.yml",
    "actions/jenkins/examples/Jenkinsfile",
}


def _snippets(document: Path) -> list[tuple[str, str]]:
    return MARKED.findall(document.read_text(encoding="utf-8"))


def _check(document: Path) -> set[str]:
    found = set()
    for path, block in _snippets(document):
        source = REPO / path
        assert source.is_file(), f"{document.name} marks {path}, which does not exist"
        assert block == source.read_text(encoding="utf-8").rstrip("\n"), (
            f"{document.name}: the snippet marked {path} differs from the file; copy it again"
        )
        found.add(path)
    return found


def test_docs_ci_snippets_are_the_tested_files() -> None:
    found = _check(REPO / "docs" / "ci.md")
    assert found >= ADOPTION_SNIPPETS | {
        "actions/examples/github/composite-steps.yml",
        ".github/workflows/gameday-schedule.yml",
    }


def test_readme_snippets_are_the_tested_files() -> None:
    readme = REPO / "README.md"
    if not readme.is_file() or not _snippets(readme):
        pytest.skip("README.md has no marked CI adoption snippets (<!-- file: PATH -->) yet")
    assert _check(readme) >= ADOPTION_SNIPPETS


def test_every_action_input_is_documented() -> None:
    text = (REPO / "docs" / "ci.md").read_text(encoding="utf-8")
    for action in ("setup", "rollout", "gameday"):
        spec = yaml.safe_load((ACTIONS / action / "action.yml").read_text(encoding="utf-8"))
        for name in [*spec["inputs"], *spec["outputs"]]:
            assert f"`{name}`" in text, f"docs/ci.md does not mention {action} input/output {name}"
