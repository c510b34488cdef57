"""`invoke deploy` end to end: Locust load around a real rollout, claims, the report folder."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from cautious.cluster.sandbox import Sandbox
from cautious.config import load_config

from tests.docker.helpers import REPO, assert_nothing_left, cluster_config
from tests.rendering import assert_rerenders_identically

pytestmark = pytest.mark.docker

# Declared secret by release ``leaky``: the sample service refuses it at start-up and prints it
# (APP_ERROR_RATE='…' is not a number) before it exits, so a rollback may carry it anywhere.
PLANTED = "planted-secret-5c0ffee"


@pytest.fixture
def config_path(tmp_path: Path, docker_client: docker.DockerClient) -> Iterator[Path]:
    path = cluster_config(
        tmp_path,
        service={"test_command": "true"},
        releases={"leaky": {"env": {"APP_ERROR_RATE": {"value": PLANTED, "secret": True}}}},
        rollout={"bake_s": 1},
        load={"rate": 50, "users": 20, "warmup_s": 2, "tail_s": 2},
        claims={"min_requests": 50},
    )
    config = load_config(path)
    sandbox = Sandbox(config, say=lambda _: None)
    try:
        sandbox.up(3, "v1")
        yield path
    finally:
        sandbox.down()
        assert_nothing_left(docker_client, config.cluster.name)


def deploy(config: Path, *args: str, task: str = "deploy") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "invoke", task, *args, "--config", str(config)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )


def test_a_healthy_release_passes_and_writes_the_four_files(
    config_path: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "report"
    result = deploy(config_path, "--release", "v2", "--report-dir", str(folder))
    assert result.returncode == 0, result.stderr
    assert "verdict: pass" in result.stderr
    assert {p.name for p in folder.iterdir()} >= {
        "report.json",
        "report.md",
        "junit.xml",
        "report.html",
    }
    report = json.loads((folder / "report.json").read_text())
    assert report["verdict"] == "pass"
    assert report["availability"]["failed"] == 0
    assert report["availability"]["sent"] > 200
    assert report["rollout"]["outcome"] == "succeeded"
    assert report["rollout"]["from_release"] == "v1"
    assert {item["release"] for item in report["instances"]} == {"v2"}
    assert set(report["availability"]["phases"]) == {"before", "during", "after"}
    assert {"v1", "v2"} <= set(report["availability"]["per_release"])
    assert_rerenders_identically(folder)


def test_a_release_with_errors_fails_its_success_ratio_claim(
    config_path: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "report"
    result = deploy(config_path, "--release", "errors-5pct", "--report-dir", str(folder))
    assert result.returncode == 1
    assert "success ratio" in result.stderr
    suite = ET.parse(folder / "junit.xml").getroot()
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    failure = cases["success_ratio"].find("failure")
    assert failure is not None
    assert "measured" in failure.get("message", "") and "%" in failure.get("message", "")


def test_a_claim_can_be_overridden_from_the_command_line(config_path: Path, tmp_path: Path) -> None:
    result = deploy(
        config_path,
        "--release",
        "v2",
        "--claim",
        "p99_ms=0.001",
        "--report-dir",
        str(tmp_path / "r"),
    )
    assert result.returncode == 1
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert [c["verdict"] for c in report["claims"] if c["name"] == "p99_ms"] == ["fail"]


def test_a_misspelt_claim_is_bad_input(config_path: Path) -> None:
    result = deploy(config_path, "--release", "v2", "--claim", "p99=1")
    assert result.returncode == 2
    assert "unknown key 'claims.p99'" in result.stderr


def test_a_planted_secret_appears_in_no_artefact_of_a_deploy(
    config_path: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "report"
    deployed = deploy(config_path, "--release", "leaky", "--report-dir", str(folder))
    history = deploy(config_path, "--json", task="history")
    shown = deploy(config_path, task="config")
    assert deployed.returncode == 1, deployed.stderr
    assert "rollout rolled-back" in deployed.stderr
    assert "leaky" in history.stdout and "[redacted]" in shown.stdout
    files = [path for path in tmp_path.rglob("*") if path.is_file() and path != config_path]
    assert {"report.json", "report.html", "requests.csv"} <= {path.name for path in files}
    texts = {str(path): path.read_bytes().decode("utf-8", "replace") for path in files}
    for run in (deployed, history, shown):
        texts[" ".join(run.args[3:5])] = run.stdout + run.stderr
    assert [where for where, text in texts.items() if PLANTED in text] == []
