"""Experiments on a real sandbox: the plain ``chaos run`` CLI, and short game days.

Each test gets its own cluster (a unique name from ``cluster_config``) of three instances with
short waits, and removes it afterwards. Three, not two: with two, the latency experiment has the
LB take the slow instance out while the rollout drains the other one — 44 requests got 503
(the runner does not check that another instance is in rotation before it retires one). Kept
to a few minutes on a 2-core machine: load at 40 req/s, 2 s warm-up and tail, 1 s bakes.

What the issue's "done when" asks, checked here:
- ``chaos run chaos/experiments/<one>.json`` works with the plain CLI on a running sandbox;
- a game day runs experiments in a row, goes on after a failure and exits 1 when one deviated
  (a rolling deploy of a release that answers 5 % errors really violates the claims);
- claims set impossibly tight fail the experiment before anything is injected (exit 1);
- after every experiment the sandbox is healthy, with no helper container, qdisc, LB redirect.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
from cautious.cluster.sandbox import Sandbox
from cautious.config import load_config
from chaoscautious import cluster, faults
from chaoscautious.context import Target, target

from tests.docker.helpers import REPO, assert_nothing_left, cluster_config
from tests.rendering import assert_rerenders_identically

pytestmark = pytest.mark.docker

EXPERIMENTS = REPO / "chaos" / "experiments"
# Connect timeout below the clients' 2 s timeout: a killed instance's connections are retried on
# another one instead of timing out (kill-mid-rollout measured 29 failed/missing with 2 s, 0 here).
LB = {"check_interval_ms": 300, "rise": 2, "fall": 2, "timeout_connect_ms": 250}
ROLLOUT = {"bake_s": 1, "ready_timeout_s": 15, "drain_timeout_s": 5, "stop_grace_s": 5}
LOAD = {"rate": 40, "users": 40, "warmup_s": 2, "tail_s": 2}


@pytest.fixture
def sandbox_config(tmp_path: Path, docker_client: docker.DockerClient) -> Iterator[Path]:
    path = cluster_config(
        tmp_path,
        service={"test_command": "true"},
        cluster={"instances": 3},
        lb=LB,
        rollout=ROLLOUT,
        load=LOAD,
        releases={"errors-5pct": {"env": {"APP_ERROR_RATE": "0.05"}}},
    )
    config = load_config(path)
    box = Sandbox(config, say=lambda _: None)
    box.up(3, "v1")
    try:
        yield path
    finally:
        box.down()
        assert_nothing_left(docker_client, config.cluster.name)


def chaos_target(path: Path) -> Target:
    return target({"cautious_config": str(path)})


def assert_restored(path: Path) -> None:
    """Healthy again, nothing left behind: checked on the cluster, not taken from a report."""
    tgt = chaos_target(path)
    snapshot = cluster.wait_healthy(tgt, timeout_s=20)
    assert snapshot["unhealthy"] == 0, snapshot
    assert snapshot["releases"] == {"v1": 3}, snapshot
    left = faults.leftovers(tgt)
    assert left["count"] == 0, left  # no helper, qdisc, LB redirect, pause or cut


def test_plain_chaos_run_injects_latency_and_leaves_nothing_behind(
    sandbox_config: Path, tmp_path: Path
) -> None:
    """The plain CLI, on the experiment that creates helper containers (and a netem qdisc or
    an LB redirect to the latency proxy): it holds, and the cluster is back as it was."""
    journal_path = tmp_path / "journal.json"
    out = tmp_path / "run"
    env = {**os.environ, "CAUTIOUS_CONFIG": str(sandbox_config), "CAUTIOUS_CHAOS_OUT": str(out)}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "chaostoolkit",
            "--no-version-check",
            "--log-file",
            str(tmp_path / "chaostoolkit.log"),
            "run",
            "--journal-path",
            str(journal_path),
            str(EXPERIMENTS / "latency-during-rollout.json"),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    journal: dict[str, Any] = json.loads(journal_path.read_text(encoding="utf-8"))
    assert result.returncode == 0, (tmp_path / "chaostoolkit.log").read_text()
    assert journal["status"] == "completed" and journal["deviated"] is False
    assert journal["steady_states"]["before"]["steady_state_met"] is True
    probes = journal["steady_states"]["after"]["probes"]
    after = {probe["activity"]["name"]: probe["output"] for probe in probes}
    assert after["no-request-failed"]["verdict"] == "pass"
    fault = after["the-latency-was-caught"]["faults"][0]
    assert fault["caught_by_lb"] or fault["caught_by_claims"], fault
    assert after["the-rollout-ended-as-expected"]["outcome"] == "succeeded"
    assert after["no-fault-left-behind"]["count"] == 0
    assert all(run["status"] == "succeeded" for run in journal["rollbacks"])
    state = json.loads((out / "chaos-run.json").read_text(encoding="utf-8"))
    assert state["faults"][0]["mechanism"] in {"netem", "proxy"}
    assert (out / "load" / "requests.csv").is_file()
    assert_restored(sandbox_config)


def write_experiment(source: str, folder: Path, **claims: Any) -> Path:
    """A copy of a repo experiment whose availability probes judge ``claims`` overrides."""
    experiment = json.loads((EXPERIMENTS / f"{source}.json").read_text(encoding="utf-8"))
    for probe in experiment["steady-state-hypothesis"]["probes"]:
        if probe["provider"]["func"] == "availability":
            probe["provider"]["arguments"] = {"claims": claims}
    path = folder / f"{source}-tight.json"
    path.write_text(json.dumps(experiment), encoding="utf-8")
    return path


def test_a_game_day_goes_on_after_failures_and_exits_1(
    sandbox_config: Path, tmp_path: Path
) -> None:
    tight = write_experiment("crash-loop-rolls-back", tmp_path, p99_ms=0.001)
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        "name: test game day\nexperiments:\n"
        f"  - {{path: {EXPERIMENTS / 'crash-loop-rolls-back.json'}, timeout_s: 300}}\n"
        f"  - path: {EXPERIMENTS / 'rolling-under-load.json'}\n"
        "    name: deploy-errors-5pct\n"
        "    timeout_s: 300\n"
        "    vars: {target_release: errors-5pct}\n"
        f"  - {{path: {tight}, name: impossible-claims, timeout_s: 300}}\n",
        encoding="utf-8",
    )
    report_dir = tmp_path / "gameday"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cautious.cli.chaos_tasks",
            "gameday",
            "--suite",
            str(suite),
            "--config",
            str(sandbox_config),
            "--report-dir",
            str(report_dir),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 1, result.stderr[-3000:]
    summary = json.loads((report_dir / "report.json").read_text(encoding="utf-8"))
    assert summary["verdict"] == "fail"
    held, deviated, impossible = summary["experiments"]

    assert held["name"] == "crash-loop-rolls-back" and held["verdict"] == "pass", held
    assert held["rollout"]["outcome"] == "rolled-back"
    assert held["figures"]["success_ratio"] == 1.0
    assert held["figures"]["max_starts_per_instance"] <= 2

    # the claims held on v1 before the method and broke when 5 % errors were rolled out
    assert deviated["deviated"] is True and deviated["verdict"] == "fail", deviated
    assert deviated["status"] == "completed"
    assert deviated["rollout"]["outcome"] == "succeeded"
    assert deviated["figures"]["success_ratio"] < 0.999
    assert "deviated after the method" in deviated["reasons"][0]

    # impossible claims fail before anything is injected: chaoslib would call that "completed"
    assert impossible["verdict"] == "fail" and impossible["deviated"] is False, impossible
    assert impossible["status"] == "interrupted"
    assert any("did not hold before the method" in reason for reason in impossible["reasons"])
    assert impossible["rollout"] == {}

    for entry in summary["experiments"]:
        assert entry["cleanup"]["healthy"] == "3/3" and entry["cleanup"]["leftovers"] == 0, entry
        folder = report_dir / entry["folder"]
        assert (folder / "journal.json").is_file()
        assert (folder / "chaos-run.json").is_file()
    for entry in (held, deviated):
        report = json.loads((report_dir / entry["folder"] / "report.json").read_text())
        assert report["verdict"] == entry["verdict"]
        assert report["experiments"][0]["name"] == entry["name"]
        assert (report_dir / entry["report"]).is_file()
    markdown = (report_dir / "report.md").read_text(encoding="utf-8")
    assert "| deploy-errors-5pct | ❌ fail | completed | yes |" in markdown
    assert (report_dir / "junit.xml").read_text().count("<failure") == 2
    assert_rerenders_identically(report_dir)
    assert_rerenders_identically(report_dir / deviated["folder"])
    assert_restored(sandbox_config)


def test_chaos_run_task_writes_a_report_folder(sandbox_config: Path, tmp_path: Path) -> None:
    report_dir = tmp_path / "one"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cautious.cli.chaos_tasks",
            "chaos.run",
            str(EXPERIMENTS / "kill-mid-rollout.json"),
            "--config",
            str(sandbox_config),
            "--report-dir",
            str(report_dir),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((report_dir / "report.json").read_text(encoding="utf-8"))
    (entry,) = summary["experiments"]
    assert entry["verdict"] == "pass" and entry["rollout"]["outcome"] in {
        "succeeded",
        "rolled-back",
    }
    assert any("SIGKILL" in event for event in entry["events"])
    experiment_report = json.loads((report_dir / entry["folder"] / "report.json").read_text())
    assert experiment_report["availability"]["phases"]["during"]["seconds"] > 0
    assert any(event["state"] == "killed" for event in experiment_report["timeline"])
    assert (report_dir / entry["folder"] / "report.html").is_file()
    assert_restored(sandbox_config)
