"""The canary judge on the real sandbox at 100 req/s: A/A deploys are never rolled back, a 5 %
error release always is (within 20 s of the canary taking traffic), and +250 ms is caught on
latency.

About 15 minutes: marked ``slow`` and run only when CAUTIOUS_SLOW=1 (not in every CI run).
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

from tests.docker.helpers import REPO, assert_nothing_left, cluster_config

pytestmark = [
    pytest.mark.docker,
    pytest.mark.slow,
    pytest.mark.skipif(not os.environ.get("CAUTIOUS_SLOW"), reason="slow: set CAUTIOUS_SLOW=1"),
]

A_A_DEPLOYS = 10
BAD_DEPLOYS = 10


def sandbox_on(
    tmp_path: Path, client: docker.DockerClient, release: str, steps: list[int]
) -> Iterator[Path]:
    """A cluster of three on ``release``, configured for judged canaries at 100 req/s."""
    path = cluster_config(
        tmp_path,
        service={"test_command": "true"},
        rollout={"strategy": "canary", "canary_steps": steps, "bake_s": 1},
        canary={"bake_s": 8, "max_extension_s": 150, "detect": {"error_ratio": 0.05, "p99": 0.5}},
        load={"rate": 100, "users": 50, "warmup_s": 2, "tail_s": 1},
        # Health checks that tolerate a busy machine: a canary marked DOWN by a slow check
        # would end the bake before the judge had its say.
        lb={"check_interval_ms": 1000, "fall": 3},
    )
    config = load_config(path)
    sandbox = Sandbox(config, say=lambda _: None)
    try:
        sandbox.up(3, release)
        yield path
    finally:
        sandbox.down()
        assert_nothing_left(client, config.cluster.name)


def deploy(config: Path, release: str, folder: Path) -> dict[str, Any]:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "invoke",
            "deploy",
            "--release",
            release,
            "--config",
            str(config),
            "--report-dir",
            str(folder),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert (folder / "report.json").is_file(), run.stderr[-2_000:]
    report: dict[str, Any] = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    return report


def decided(report: dict[str, Any]) -> dict[str, Any]:
    bakes = report["rollout"]["canary"]
    assert bakes, report["rollout"]["reason"]
    last: dict[str, Any] = bakes[-1]
    return last


@pytest.fixture
def on_errors_2pct(tmp_path: Path, docker_client: docker.DockerClient) -> Iterator[Path]:
    # 25 % to one canary beside three baselines: every instance serves the same load, so an
    # A/A latency comparison is fair even when the machine is busy (at 50 % the canary would
    # serve three times a baseline's requests, and be slower for that alone).
    yield from sandbox_on(tmp_path, docker_client, "errors-2pct", [25, 100])


@pytest.fixture
def on_v1(tmp_path: Path, docker_client: docker.DockerClient) -> Iterator[Path]:
    yield from sandbox_on(tmp_path, docker_client, "v1", [25, 50, 100])


def test_a_a_canaries_with_the_same_two_percent_errors_are_never_rolled_back(
    on_errors_2pct: Path, tmp_path: Path
) -> None:
    outcomes = []
    for i in range(A_A_DEPLOYS):
        release = ("errors-2pct-again", "errors-2pct")[i % 2]
        report = deploy(on_errors_2pct, release, tmp_path / f"aa-{i}")
        outcomes.append((report["rollout"]["outcome"], report["rollout"]["reason"]))
        assert decided(report)["verdict"] == "pass", report["rollout"]["reason"]
    assert [outcome for outcome, _ in outcomes] == ["succeeded"] * A_A_DEPLOYS, outcomes


def test_a_five_percent_error_release_is_rolled_back_every_time_within_20_s(
    on_v1: Path, tmp_path: Path
) -> None:
    seconds = []
    for i in range(BAD_DEPLOYS):
        report = deploy(on_v1, "errors-5pct", tmp_path / f"bad-{i}")
        assert report["rollout"]["outcome"] == "rolled-back", report["rollout"]["reason"]
        bake = decided(report)
        assert bake["verdict"] == "fail"
        failing = [m["metric"] for m in bake["judgement"]["metrics"] if m["verdict"] == "fail"]
        assert failing == ["error_ratio"]
        seconds.append(bake["looks"][-1]["t"])
    # Seconds from the canary taking traffic to the judgement: the target is 20 s at 100 req/s.
    assert max(seconds) <= 20, seconds


def test_a_release_250_ms_slower_is_rolled_back_on_latency(on_v1: Path, tmp_path: Path) -> None:
    report = deploy(on_v1, "slow-responses", tmp_path / "slow")
    assert report["rollout"]["outcome"] == "rolled-back"
    bake = decided(report)
    failing = [m["metric"] for m in bake["judgement"]["metrics"] if m["verdict"] == "fail"]
    assert "latency_p99" in failing
