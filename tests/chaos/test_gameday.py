"""The game day's own judgement of a chaoslib journal, its suite file, summary and task errors.

chaoslib's ``completed`` is not a pass: these journals are the ways an
experiment can end "completed" or exit 0 while something went wrong, and each must fail.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from cautious.config import load_config
from cautious.exceptions import ConfigError
from cautious.gameday.experiment import ExperimentResult
from cautious.gameday.judge import judge_journal
from cautious.gameday.suite import Suite, load_suite
from cautious.gameday.summary import gameday_report
from cautious.report.document import write_report

REPO = Path(__file__).resolve().parents[2]


def probe(name: str, met: bool, output: Any = None, failed: bool = False) -> dict[str, Any]:
    run: dict[str, Any] = {
        "activity": {"name": name, "type": "probe"},
        "status": "failed" if failed else "succeeded",
        "output": output,
        "tolerance_met": met,
    }
    if failed:
        run["exception"] = ["Traceback\n", "ActivityFailed: ChaosError: no load\n"]
    return run


def journal(**changes: Any) -> dict[str, Any]:
    """A journal of an experiment that held; ``changes`` break it."""
    base: dict[str, Any] = {
        "status": "completed",
        "deviated": False,
        "experiment": {"title": "t", "steady-state-hypothesis": {"probes": [{"name": "p"}]}},
        "steady_states": {
            "before": {"steady_state_met": True, "probes": [probe("p", True)]},
            "after": {"steady_state_met": True, "probes": [probe("p", True)]},
            "during": [],
        },
        "run": [{"activity": {"name": "kill", "type": "action"}, "status": "succeeded"}],
        "rollbacks": [{"activity": {"name": "restore", "type": "action"}, "status": "succeeded"}],
    }
    base.update(changes)
    return base


def test_an_experiment_that_held_passes() -> None:
    assert judge_journal(journal()) == ("pass", [])


def test_a_deviation_fails_with_the_probe_and_its_figures() -> None:
    verdict, reasons = judge_journal(
        journal(
            deviated=True,
            steady_states={
                "before": {"steady_state_met": True, "probes": [probe("p", True)]},
                "after": {
                    "steady_state_met": False,
                    "probes": [
                        probe(
                            "claims",
                            False,
                            {
                                "verdict": "fail",
                                "success_ratio": 0.95,
                                "claims": [
                                    {"verdict": "fail", "detail": "measured 95 %, claimed ≥ 99.9 %"}
                                ],
                            },
                        )
                    ],
                },
            },
        )
    )
    assert verdict == "fail"
    assert "deviated after the method" in reasons[0]
    assert "claims" in reasons[0] and "0.95" in reasons[0] and "claimed ≥ 99.9 %" in reasons[0]


def test_a_steady_state_missed_before_the_method_fails_although_chaoslib_says_completed() -> None:
    verdict, reasons = judge_journal(
        journal(
            steady_states={
                "before": {"steady_state_met": False, "probes": [probe("p", False, 0)]},
                "after": None,
            }
        )
    )
    assert verdict == "fail"
    assert reasons == [
        "the steady state did not hold before the method: probe 'p' out of tolerance (0)"
    ]


def test_an_interruption_by_the_control_before_the_method_is_explained() -> None:
    run_state = {
        "hypotheses": [
            {"phase": "before-method", "met": False, "failing_probe": "claims", "detail": "p99"}
        ]
    }
    verdict, reasons = judge_journal(
        journal(status="interrupted", steady_states={}, run=[]), run_state
    )
    assert verdict == "fail"
    assert reasons[0] == "chaoslib ended the experiment 'interrupted'"
    assert "did not hold before the method (probe 'claims': p99)" in reasons[1]


def test_a_failed_action_fails_even_when_chaoslib_completed() -> None:
    failed = {
        "activity": {"name": "kill", "type": "action"},
        "status": "failed",
        "exception": ["Traceback\n", "ActivityFailed: ChaosError: no instance\n"],
    }
    verdict, reasons = judge_journal(journal(run=[failed]))
    assert verdict == "fail"
    assert reasons == ["action 'kill' failed: ActivityFailed: ChaosError: no instance"]


def test_a_failed_rollback_fails() -> None:
    failed = {
        "activity": {"name": "restore", "type": "action"},
        "status": "failed",
        "exception": ["ActivityFailed: not healthy\n"],
    }
    verdict, reasons = judge_journal(journal(rollbacks=[failed]))
    assert verdict == "fail"
    assert reasons == ["rollback 'restore' failed: ActivityFailed: not healthy"]


def test_a_probe_that_raised_is_named() -> None:
    verdict, reasons = judge_journal(
        journal(
            status="failed",
            steady_states={
                "before": {"steady_state_met": True, "probes": [probe("p", True)]},
                "after": {"steady_state_met": False, "probes": [probe("p", False, failed=True)]},
            },
        )
    )
    assert verdict == "fail"
    assert "probe 'p' failed: ActivityFailed: ChaosError: no load" in reasons[1]


def test_a_missing_after_check_or_hypothesis_or_journal_fails() -> None:
    _, reasons = judge_journal(journal(steady_states={"before": {"steady_state_met": True}}))
    assert reasons == ["the steady state was not checked after the method"]
    _, reasons = judge_journal(journal(experiment={"title": "t"}))
    assert reasons == ["the experiment has no steady-state hypothesis: nothing was checked"]
    assert judge_journal(None)[0] == "fail"


def test_a_deviation_during_the_method_fails() -> None:
    during = [
        {"steady_state_met": True},
        {"steady_state_met": False, "probes": [probe("p", False)]},
    ]
    steady = {**journal()["steady_states"], "during": during}
    verdict, reasons = judge_journal(journal(steady_states=steady))
    assert verdict == "fail" and "during the method (check 2)" in reasons[0]


# -- suite files ----------------------------------------------------------------------------------


# The least a file needs to be taken for an experiment.
MINIMAL_EXPERIMENT = '{"title": "t", "description": "d", "method": [{"name": "a"}]}'


def test_a_suite_lists_experiments_relative_to_itself(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "one.json").write_text(MINIMAL_EXPERIMENT, encoding="utf-8")
    (tmp_path / "two.json").write_text(MINIMAL_EXPERIMENT, encoding="utf-8")
    suite_file = tmp_path / "suite.yaml"
    suite_file.write_text(
        "name: mine\nexperiments:\n  - x/one.json\n"
        "  - {path: two.json, name: second, timeout_s: 60, vars: {target_release: v2}}\n",
        encoding="utf-8",
    )
    suite = load_suite(suite_file)
    assert suite.name == "mine"
    assert [(e.name, e.path, e.timeout_s) for e in suite.entries] == [
        ("one", tmp_path / "x" / "one.json", 900.0),
        ("second", tmp_path / "two.json", 60.0),
    ]
    assert suite.entries[1].vars == {"target_release": "v2"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("experiments: []\n", "experiments"),
        ("experiments: [missing.json]\n", "does not exist"),
        ("experiments: [{path: a.json, timout_s: 3}]\n", "timout_s"),
        ("experiments: [\n", "not valid YAML"),
        ("experiments: [b.json]\n", "not a Chaos Toolkit experiment: 'title' = None"),
        ("experiments: [{path: a.json, timeout_s: true}]\n", "experiments.0._Entry.timeout_s"),
        ("experiments: [{path: a.json, timeout_s: .nan}]\n", "Input should be"),
        ("a: &a [1]\nexperiments: *a\n", "aliases .*name. are not accepted"),
    ],
)
def test_a_bad_suite_is_bad_input(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "a.json").write_text(MINIMAL_EXPERIMENT, encoding="utf-8")
    (tmp_path / "b.json").write_text('{"schema_version": 1, "verdict": "pass"}', encoding="utf-8")
    suite_file = tmp_path / "suite.yaml"
    suite_file.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_suite(suite_file)


# -- summary ------------------------------------------------------------------------------------


def results(folder: Path) -> list[ExperimentResult]:
    """Two experiments of a game day written to ``folder``: one held, one deviated."""
    deviated = ExperimentResult(
        name="kill-mid-rollout",
        title="An instance killed mid-rollout",
        path=REPO / "chaos" / "experiments" / "kill-mid-rollout.json",
        folder=folder / "02-kill-mid-rollout",
        status="completed",
        deviated=True,
        verdict="fail",
        reasons=("the steady state deviated after the method: probe 'claims' …",),
        started=1_763_900_000.0,
        duration_s=41.5,
        figures={
            "success_ratio": 0.97,
            "longest_error_window_s": 2,
            "p99_ms": 207.9,
            "sent": 1026,
            "failed": 5,
            "missing": 24,
        },
        rollout={"release": "v2", "outcome": "succeeded"},
        cleanup={"healthy": "3/3", "leftovers": 0},
        events=({"t": 1_763_900_010.0, "what": "sample-3 (v1) sent SIGKILL: now exited"},),
        journal=folder / "02-kill-mid-rollout" / "journal.json",
        report=folder / "02-kill-mid-rollout" / "report.md",
    )
    held = replace(
        deviated,
        name="rolling-under-load",
        folder=folder / "01-rolling-under-load",
        deviated=False,
        verdict="pass",
        reasons=(),
        journal=folder / "01-rolling-under-load" / "journal.json",
        report=None,
    )
    return [held, deviated]


@pytest.fixture
def gameday_folder(tmp_path: Path) -> Path:
    """The report folder of a game day where one experiment of two did not hold."""
    config_path = tmp_path / "cautious.yaml"
    config_path.write_text("cluster: {name: unit}\n", encoding="utf-8")
    folder = tmp_path / "gameday"
    document = gameday_report(
        results(folder),
        suite=Suite(name="sandbox game day", entries=()),
        config=load_config(config_path),
        config_path=config_path,
        command="gameday",
        started=time.time(),
    )
    write_report(document, folder)
    return folder


def test_the_summary_shows_each_verdict_with_figures_and_links(gameday_folder: Path) -> None:
    text = (gameday_folder / "report.md").read_text(encoding="utf-8")
    assert text.startswith("## ❌ Cautious game day: fail")
    assert "1 of 2 experiment(s) did not hold: kill-mid-rollout" in text
    row = next(line for line in text.splitlines() if line.startswith("| kill-mid-rollout"))
    for cell in ("❌ fail", "yes", "97 %", "2 s", "207.9 ms", "1026 / 5 / 24", "v2: succeeded",
                 "3/3 healthy, 0 leftovers", "[journal](02-kill-mid-rollout/journal.json)",
                 "[report](02-kill-mid-rollout/report.md)"):  # fmt: skip
        assert cell in row, cell
    assert "- the steady state deviated after the method" in text
    assert "what happened: sample-3 (v1) sent SIGKILL" in text


def test_the_summary_has_no_availability_of_its_own(gameday_folder: Path) -> None:
    report = json.loads((gameday_folder / "report.json").read_text(encoding="utf-8"))
    assert (report["availability"], report["claims"], report["rollout"]) == (None, [], None)
    assert [entry["folder"] for entry in report["experiments"]] == [
        "01-rolling-under-load",
        "02-kill-mid-rollout",
    ]
    page = (gameday_folder / "report.html").read_text(encoding="utf-8")
    assert '<a href="02-kill-mid-rollout/journal.json">journal</a>' in page
    assert 'id="timeline-chart"' not in page


def test_junit_has_one_case_per_experiment(gameday_folder: Path) -> None:
    suite = ET.parse(gameday_folder / "junit.xml").getroot()
    assert suite.get("tests") == "2" and suite.get("failures") == "1"
    failure = suite.find("testcase[@name='kill-mid-rollout']/failure")
    assert failure is not None and failure.get("type") == "ExperimentDeviated"
    assert suite.find("testcase[@name='rolling-under-load']/failure") is None


# -- the tasks ----------------------------------------------------------------------------------


def tasks(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cautious.cli.chaos_tasks", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_bad_input_is_one_line_and_exit_code_2(tmp_path: Path) -> None:
    config = tmp_path / "cautious.yaml"
    config.write_text("cluster: {name: unit}\n", encoding="utf-8")
    result = tasks("gameday", "--config", str(config), "--suite", "nope.yaml", cwd=REPO)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "cautious: the game-day suite: no file at nope.yaml"
    ]
    result = tasks("chaos.run", "no-such-experiment", "--config", str(config), cwd=REPO)
    assert result.returncode == 2
    assert "no experiment file 'no-such-experiment'" in result.stderr
    result = tasks("gameday", "--config", str(config), "--timeout", "soon", cwd=REPO)
    assert result.returncode == 2 and "--timeout takes seconds" in result.stderr


def test_the_tasks_are_in_the_main_collection_once_wired() -> None:
    from cautious.tasks import ns

    if "gameday" not in ns.task_names:
        pytest.skip("cautious.tasks does not include the chaos tasks yet")
    assert "chaos.run" in ns.task_names


def test_summary_json_is_what_ci_reads(gameday_folder: Path) -> None:
    """actions/lib/cautious_github.py annotates deviated experiments from report.json."""
    sys.path.insert(0, str(REPO / "actions" / "lib"))
    try:
        import cautious_github
    finally:
        sys.path.pop(0)
    report = cautious_github.load_report(gameday_folder)
    lines = cautious_github.annotation_lines(report, 1, "cautious gameday")
    assert lines == ["::error title=experiment kill-mid-rollout::kill-mid-rollout: fail (deviated)"]
