"""A report.json from outside is checked before it is rendered again: a wrong shape, a huge
number or a FIFO is one line (exit 2), and nothing is written."""

from __future__ import annotations

import copy
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
from cautious.exceptions import UsageError
from cautious.report import document
from cautious.report.document import read_report, render_folder
from cautious.report.registry import Renderer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.test_report import sample_report

VALID = sample_report()


def refused(report: Any, folder: Path) -> str:
    """The one line render_folder refuses ``report`` with; nothing but report.json is left."""
    (folder / "report.json").write_text(json.dumps(report), encoding="utf-8")
    with pytest.raises(UsageError) as error:
        render_folder(folder)
    assert sorted(path.name for path in folder.iterdir()) == ["report.json"]
    message = str(error.value)
    assert "\n" not in message and len(message) <= 300
    return message


def changed(path: list[str | int], value: Any) -> dict[str, Any]:
    """The valid report with the value at ``path`` replaced."""
    report = copy.deepcopy(VALID)
    node: Any = report
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return report


def test_a_report_as_cautious_writes_it_passes_the_check(tmp_path: Path) -> None:
    (tmp_path / "report.json").write_text(json.dumps(VALID), encoding="utf-8")
    assert read_report(tmp_path)[0] == VALID


@pytest.mark.parametrize(
    ("path", "value", "problem"),
    [
        (["claims"], "all good", "claims = 'all good' is not allowed"),
        (["availability", "sent"], True, "availability.sent = True is not allowed"),
        (["availability", "per_second", 0, "t"], 1e300, "numbers in a report are at most 1e+15"),
        (["availability", "failed"], 10**40, "availability.failed = 1000000000000"),
        (["rollout", "steps"], {"a": 1}, "rollout.steps = {'a': 1} is not allowed"),
        (["verdict"], "maybe", "verdict = 'maybe' is not allowed"),
        (["timeline", 0], [], "timeline.0 = [] is not allowed"),
        (["instances"], [{"name": 1, "release": "v1"}], "instances.0.name = 1 is not allowed"),
    ],
)
def test_a_report_of_the_wrong_shape_or_with_huge_numbers_is_refused(
    tmp_path: Path, path: list[str | int], value: Any, problem: str
) -> None:
    assert problem in refused(changed(path, value), tmp_path)


def test_a_timeline_with_more_lanes_than_a_chart_can_hold_is_refused(tmp_path: Path) -> None:
    events = [{"t": 1.0, "instance": f"i-{n}", "state": "ready"} for n in range(1_000)]
    assert "timeline names 1000 instances" in refused(changed(["timeline"], events), tmp_path)


def test_a_report_nested_thousands_deep_is_refused(tmp_path: Path) -> None:
    (tmp_path / "report.json").write_text("[" * 50_000 + "]" * 50_000, encoding="utf-8")
    with pytest.raises(UsageError, match="nested deeper than"):
        render_folder(tmp_path)


def test_a_fifo_given_as_the_report_is_refused_without_hanging(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "report.json")
    with pytest.raises(UsageError, match="is a FIFO, not a regular file"):
        render_folder(tmp_path)


def test_nothing_is_written_when_one_renderer_cannot_draw_the_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(_: Any) -> bytes:
        raise KeyError("chart")

    renderers = (*document.RENDERERS, Renderer("broken", "broken.txt", broken))
    monkeypatch.setattr(document, "RENDERERS", renderers)
    assert "incomplete or malformed report (KeyError: 'chart')" in refused(VALID, tmp_path)


def _paths(node: Any, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    """Every key path of a document, so a mutation can land anywhere in it."""
    found = [prefix] if prefix else []
    if isinstance(node, dict | list):
        items = node.items() if isinstance(node, dict) else enumerate(node[:3])
        for key, child in items:
            found += _paths(child, (*prefix, key))
    return found


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=6,
)


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(path=st.sampled_from(_paths(VALID)), value=JSON_VALUES)
def test_any_changed_report_renders_or_is_refused_in_one_line(
    path: tuple[str | int, ...], value: Any
) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        (folder / "report.json").write_text(json.dumps(changed(list(path), value)), "utf-8")
        try:
            render_folder(folder)
        except UsageError as error:
            assert "\n" not in str(error) and len(str(error)) <= 300
            assert sorted(item.name for item in folder.iterdir()) == ["report.json"]
