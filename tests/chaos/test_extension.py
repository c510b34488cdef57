"""The Chaos Toolkit extension and the experiments, without a Docker engine.

``chaos validate`` and ``chaos discover`` run as the plain CLI (subprocesses), the way users and
CI call them; the rest checks what keeps a broken experiment from passing silently: every
experiment declares the control, always plays its rollbacks, restores the cluster, and checks
its hypothesis with tolerances chaoslib can evaluate.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import chaoscautious
import pytest
from cautious.config import load_config
from cautious.gameday.suite import load_suite
from chaoscautious import actions, background, controls, faults, probes, worker
from chaoscautious.context import RunState, Target, default_out_dir

REPO = Path(__file__).resolve().parents[2]
EXPERIMENTS = sorted((REPO / "chaos" / "experiments").glob("*.json"))
CHAOS = [sys.executable, "-m", "chaostoolkit", "--no-version-check", "--no-log-file"]


def load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return document


def test_there_are_the_six_experiments_of_the_issue() -> None:
    assert {path.stem for path in EXPERIMENTS} == {
        "rolling-under-load",
        "kill-mid-rollout",
        "crash-loop-rolls-back",
        "slow-start-deadline",
        "latency-during-rollout",
        "lb-restart",
    }


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda path: path.stem)
def test_chaos_validate_accepts_the_experiment(path: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [*CHAOS, "validate", str(path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "experiment syntax and semantic look valid" in result.stdout + result.stderr


def test_chaos_discover_finds_every_activity(tmp_path: Path) -> None:
    target = tmp_path / "discovery.json"
    result = subprocess.run(
        [
            *CHAOS,
            "discover",
            "--no-install",
            "--no-system-info",
            "chaostoolkit-cautious",
            "--discovery-path",
            str(target),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    discovery = json.loads(target.read_text(encoding="utf-8"))
    assert discovery["extension"] == {
        "name": "chaostoolkit-cautious",
        "version": metadata.version("chaostoolkit-cautious"),
    }
    found = {(item["type"], item["name"]) for item in discovery["activities"]}
    assert found == {("action", name) for name in actions.__all__} | {
        ("probe", name) for name in probes.__all__
    }
    assert all(item["doc"] for item in discovery["activities"]), "every activity says why"


def test_the_activity_modules_import_nothing_heavy() -> None:
    """`chaos validate` imports every activity module: no Docker SDK, pydantic,
    locust or gevent at import time."""
    code = (
        "import sys, chaoscautious, chaoscautious.actions, chaoscautious.probes, "
        "chaoscautious.controls\n"
        "print(sorted(m for m in ('docker', 'pydantic', 'locust', 'gevent', 'cautious.config') "
        "if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"


def test_discover_without_system_lists_activities() -> None:
    discovery = chaoscautious.discover(discover_system=False)
    assert discovery["system"] is None
    assert len(discovery["activities"]) == len(actions.__all__) + len(probes.__all__)


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda path: path.stem)
def test_every_experiment_is_safe_to_run(path: Path) -> None:
    """The rules that keep a broken experiment from passing (chaoslib's defaults)."""
    experiment = load(path)
    assert experiment["runtime"] == {"rollbacks": {"strategy": "always"}}
    assert [c["provider"]["module"] for c in experiment["controls"]] == ["chaoscautious.controls"]
    configuration = experiment["configuration"]
    for key, env in (
        ("cautious_config", "CAUTIOUS_CONFIG"),
        ("cautious_cluster", "CAUTIOUS_CLUSTER"),
        ("cautious_out_dir", "CAUTIOUS_CHAOS_OUT"),
    ):
        assert configuration[key]["type"] == "env" and configuration[key]["key"] == env
        assert "default" in configuration[key], "runs without the variable set"
    probes_ = experiment["steady-state-hypothesis"]["probes"]
    assert any(p["provider"]["func"] == "availability" for p in probes_), "claims are judged"
    assert any(p["provider"]["func"] == "healthy_instances" for p in probes_)
    for probe in probes_:
        tolerance = probe["tolerance"]
        assert isinstance(tolerance, dict), "bare tolerances are ambiguous or invalid"
        assert tolerance["type"] in {"range", "regex"}
        if tolerance["type"] == "range":
            low, high = tolerance["range"]
            assert isinstance(low, int | float) and isinstance(high, int | float)
        assert tolerance["target"], "probes return mappings: say which figure is judged"
    rollbacks = [r["provider"]["func"] for r in experiment["rollbacks"]]
    assert rollbacks[-1] == "restore_cluster"
    for activity in [*probes_, *experiment["method"], *experiment["rollbacks"]]:
        module = {"chaoscautious.actions": actions, "chaoscautious.probes": probes}[
            activity["provider"]["module"]
        ]
        assert activity["provider"]["func"] in module.__all__


def test_the_default_suite_runs_every_experiment() -> None:
    suite = load_suite(REPO / "chaos" / "gameday.yaml")
    assert {entry.path for entry in suite.entries} == set(EXPERIMENTS)
    assert suite.entries[0].name == "rolling-under-load"  # the everyday case first


# -- pure parts -----------------------------------------------------------------------------------


@pytest.fixture
def target(tmp_path: Path) -> Target:
    config = tmp_path / "cautious.yaml"
    config.write_text(
        "cluster: {name: unit}\nstate_dir: state\nreports_dir: reports\n", encoding="utf-8"
    )
    return Target(config_path=config, config=load_config(config), out_dir=None)


def test_run_state_tells_before_from_after_the_method(target: Target) -> None:
    state = RunState(target)
    assert state.method_started() is None  # no control: probes refuse to guess
    state.write({"control": True, "method_started": None})
    assert state.method_started() is False
    state.update(lambda data: data.__setitem__("method_started", time.time()))
    assert state.method_started() is True
    state.event("sample-1 killed", instance="sample-1", state="killed")
    assert state.read()["events"][0]["state"] == "killed"


def test_run_state_makes_a_run_folder_once(target: Target) -> None:
    state = RunState(target)
    first = state.out_dir()
    assert first.is_dir() and first.parent == target.config.path(Path("reports")) / "chaos"
    assert state.out_dir() == first
    assert default_out_dir(target, "A Title / with: Junk!").name.endswith("-a-title-with-junk")


def test_probes_about_the_method_need_the_control(target: Target) -> None:
    configuration = {"cautious_config": str(target.config_path)}
    with pytest.raises(Exception, match="control"):
        probes.rollout_state(configuration=configuration)
    with pytest.raises(Exception, match="control"):
        probes.faults_caught(configuration=configuration)
    with pytest.raises(Exception, match="no load was started"):
        probes.availability(configuration=configuration)


def test_a_failed_action_during_the_method_interrupts(target: Target) -> None:
    from chaoslib.exceptions import InterruptExecution

    configuration = {"cautious_config": str(target.config_path)}
    state = RunState(target)
    state.write({"control": True, "method_started": time.time(), "method_ended": None})
    failed = {"status": "failed", "exception": ["Traceback", "ChaosError: boom\n"]}
    with pytest.raises(InterruptExecution, match="boom"):
        controls.after_activity_control(
            {"type": "action", "name": "x"}, state=failed, configuration=configuration
        )
    state.update(lambda data: data.__setitem__("method_ended", time.time()))
    controls.after_activity_control(  # rollbacks must all run: no interrupt after the method
        {"type": "action", "name": "x"}, state=failed, configuration=configuration
    )


def test_a_hypothesis_failing_before_the_method_interrupts(target: Target) -> None:
    from chaoslib.exceptions import InterruptExecution

    configuration = {"cautious_config": str(target.config_path)}
    RunState(target).write({"control": True, "method_started": None, "hypotheses": []})
    controls.before_hypothesis_control({}, configuration=configuration)
    outcome = {
        "steady_state_met": False,
        "probes": [
            {
                "activity": {"name": "claims"},
                "tolerance_met": False,
                "output": {"verdict": "fail", "p99_ms": 210.0},
            }
        ],
    }
    with pytest.raises(InterruptExecution, match=r"before the method.*claims"):
        controls.after_hypothesis_control({}, state=outcome, configuration=configuration)
    entry = RunState(target).read()["hypotheses"][-1]
    assert entry["phase"] == "before-method" and entry["met"] is False
    # after the method a failed hypothesis is a deviation: chaoslib's to report, no interrupt
    RunState(target).update(lambda data: data.__setitem__("method_started", time.time()))
    controls.before_hypothesis_control({}, configuration=configuration)
    controls.after_hypothesis_control({}, state=outcome, configuration=configuration)


def test_after_the_experiment_the_control_records_and_clears_leftover_faults(
    target: Target, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The game day reads this record from chaos-run.json: it fails an experiment that left a
    fault behind, without importing the extension to look for one itself."""
    run_folder = tmp_path / "run"
    run_folder.mkdir()
    RunState(target).write({"control": True, "out_dir": str(run_folder)})
    left = {"helpers": [], "qdiscs": {"sample-1": "qdisc netem"}, "paused": ["sample-3"]}
    monkeypatch.setattr(background, "stop_background", lambda state: ["stopped load (pid 7)"])
    monkeypatch.setattr(faults, "leftovers", lambda tgt: {**left, "count": 2})
    monkeypatch.setattr(faults, "clear", lambda tgt, state: ["removed netem from sample-1"])
    controls.after_experiment_control(
        {},
        state={"status": "completed"},
        configuration={"cautious_config": str(target.config_path)},
    )
    record = json.loads((run_folder / "chaos-run.json").read_text(encoding="utf-8"))["cleanup"]
    assert record == {
        "stopped": ["stopped load (pid 7)"],
        "leftovers": 2,
        "left": "qdiscs sample-1; paused sample-3",
        "cleared": ["removed netem from sample-1"],
    }


def test_nearest_rank_p99_matches_availability() -> None:
    from cautious.measure.availability import compute_availability
    from cautious.measure.requestlog import RequestRecord

    latencies = [float(value) for value in range(1, 201)]
    assert probes._p99(latencies) == 198.0
    records = [RequestRecord(1000.0 + i / 100, lat, 200) for i, lat in enumerate(latencies)]
    records += [RequestRecord(999.0, 1.0, 200), RequestRecord(1003.0, 1.0, 200)]
    assert compute_availability(records).p99_ms == probes._p99(latencies)
    assert probes._p99([]) is None


def test_worker_settings_are_dotted_keys_with_json_values() -> None:
    assert worker._setting("rollout.ready_timeout_s=10") == ("rollout.ready_timeout_s", 10)
    assert worker._setting("rollout.strategy=canary") == ("rollout.strategy", "canary")
    with pytest.raises(Exception, match="KEY=JSON"):
        worker._setting("no-equals-sign")


def test_stop_and_restart_act_on_the_picked_instance_and_journal_how_long_they_took(
    target: Target, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chaoscautious import context

    from tests.unit.fakes import fake_cluster

    cluster = fake_cluster(tmp_path / "fake")
    monkeypatch.setitem(context._sandboxes, (str(target.config_path), "unit"), cluster.sandbox)
    configuration = {"cautious_config": str(target.config_path)}

    stopped = actions.stop_instance("sample-2", grace_s=0, configuration=configuration)
    assert stopped["instance"] == "sample-2" and stopped["took_s"] >= 0
    assert cluster.backend.instance("sample-2").state != "running"

    restarted = actions.restart_instance("sample-3", grace_s=0, configuration=configuration)
    assert restarted["instance"] == "sample-3"
    assert cluster.backend.logs("sample-3").splitlines()[-1] == "sample-3: restarted"

    events = RunState(target).read()["events"]
    assert [(event["instance"], event["state"]) for event in events] == [
        ("sample-2", "stopped"),
        ("sample-3", "restarted"),
    ]
    with pytest.raises(Exception, match="grace_s"):
        actions.stop_instance("sample-1", grace_s=-1, configuration=configuration)
