"""Game-day suite files: every generated suite is a suite of experiments, or bad input in one
line (exit 2) before anything runs or is written."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from cautious.cli.terminal import clean_errors
from cautious.exceptions import ConfigError
from cautious.gameday.suite import check_experiment, load_suite
from hypothesis import given, settings
from hypothesis import strategies as st
from invoke.exceptions import Exit

EXPERIMENT = '{"title": "t", "description": "d", "method": [{"name": "act"}]}'
FILES = {
    "good.json": EXPERIMENT,
    "good.yaml": "title: t\ndescription: d\nmethod: [{name: act}]\n",
    "report.json": '{"schema_version": 1, "verdict": "pass"}',
    "list.json": "[1, 2]",
    "nan.json": '{"title": NaN}',
    "binary.json": "\udcff",
}


def folder_with_experiments(folder: Path) -> None:
    for name, text in FILES.items():
        (folder / name).write_bytes(text.encode("utf-8", "surrogateescape"))


@pytest.mark.parametrize("name", ["report.json", "list.json", "nan.json", "binary.json"])
def test_a_file_that_is_not_an_experiment_is_refused(tmp_path: Path, name: str) -> None:
    folder_with_experiments(tmp_path)
    with pytest.raises(ConfigError) as error:
        check_experiment(tmp_path / name)
    assert "\n" not in str(error.value) and len(str(error.value)) <= 300


def test_experiments_in_json_and_yaml_are_accepted(tmp_path: Path) -> None:
    folder_with_experiments(tmp_path)
    check_experiment(tmp_path / "good.json")
    check_experiment(tmp_path / "good.yaml")


SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats()
    | st.text(max_size=10)
    | st.sampled_from([*sorted(FILES), "absent.json", "sub/../good.json", "."])
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["path", "name", "timeout_s", "vars"]), inner)
    ),
    max_leaves=8,
)
SUITES = st.fixed_dictionaries(
    {"experiments": st.lists(VALUES, max_size=3) | VALUES},
    optional={"name": VALUES, "description": VALUES, "extra": VALUES},
)
TEXTS = SUITES.map(lambda suite: yaml.safe_dump(suite, allow_unicode=True)) | st.text(max_size=80)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(text=TEXTS)
def test_any_suite_is_a_suite_or_exit_2_with_one_line(text: str) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        folder_with_experiments(folder)
        (folder / "suite.yaml").write_text(text, encoding="utf-8")
        try:
            suite: Any = clean_errors(load_suite)(folder / "suite.yaml")
        except Exit as error:
            message = str(error.message)
            assert error.code == 2, message
            assert "\n" not in message and len(message) <= 300
        else:
            assert all(entry.path.name.startswith("good.") for entry in suite.entries)
