"""Rollouts on a real sandbox under steady load: every strategy, rollbacks, crashes, the lock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from cautious.cluster.sandbox import Sandbox
from cautious.config import Config, load_config
from cautious.deploy import DeployPipeline
from cautious.rollout.journal import Journal

from tests.docker.helpers import REPO, LoadLoop, assert_nothing_left, cluster_config

pytestmark = pytest.mark.docker

ROLLOUT = {"bake_s": 1, "ready_timeout_s": 8, "drain_timeout_s": 5, "stop_grace_s": 5}
EXTRA_RELEASES = {"errors-50pct": {"env": {"APP_ERROR_RATE": "0.5"}}}


def make_config(tmp_path: Path, **rollout: object) -> Config:
    path = cluster_config(
        tmp_path,
        service={"test_command": "true"},
        rollout={**ROLLOUT, **rollout},
        cluster={"instances": 4},
        releases=EXTRA_RELEASES,
    )
    return load_config(path)


@pytest.fixture
def pipeline(tmp_path: Path, docker_client: docker.DockerClient) -> Iterator[DeployPipeline]:
    config = make_config(tmp_path)
    deploy = DeployPipeline(config, say=lambda _: None)
    try:
        deploy.sandbox.up(4, "v1")
        yield deploy
    finally:
        deploy.sandbox.down()
        assert_nothing_left(docker_client, config.cluster.name)


def with_strategy(pipeline: DeployPipeline, strategy: str, **rollout: object) -> DeployPipeline:
    config = pipeline.config.model_copy(
        update={
            "rollout": pipeline.config.rollout.model_copy(update={"strategy": strategy, **rollout})
        }
    )
    return DeployPipeline(
        config, say=lambda _: None, sandbox=Sandbox(config, pipeline.sandbox.backend)
    )


def releases(pipeline: DeployPipeline) -> list[str]:
    return [item.release for item in pipeline.sandbox.backend.instances()]


def lb_url(pipeline: DeployPipeline) -> str:
    url = pipeline.sandbox.status().lb_url
    assert url is not None
    return url


@pytest.mark.parametrize("strategy", ["rolling", "blue-green", "canary"])
def test_a_deploy_under_steady_load_loses_no_request(
    pipeline: DeployPipeline, strategy: str
) -> None:
    deploy = with_strategy(pipeline, strategy, canary_steps=[25, 100], canary_min_requests=5)
    with LoadLoop(lb_url(pipeline)) as load:
        result = deploy.deploy("v2")
    assert result is not None and result.outcome == "succeeded", result and result.reason
    assert releases(pipeline) == ["v2"] * 4
    assert load.failures == []
    assert {release for _, _, release in load.outcomes} == {"v1", "v2"}
    assert len(load.outcomes) > 100


def test_stop_and_go_completes_and_its_outage_is_measured(pipeline: DeployPipeline) -> None:
    with LoadLoop(lb_url(pipeline)) as load:
        result = with_strategy(pipeline, "stop-and-go").deploy("v2")
    assert result is not None and result.succeeded
    assert releases(pipeline) == ["v2"] * 4
    assert result.longest_without_capacity_s > 0.2
    assert load.failures, "stop-and-go takes every instance out: some requests must fail"


@pytest.mark.parametrize("release", ["crash-on-start", "never-ready"])
def test_a_release_that_never_gets_ready_is_rolled_back(
    pipeline: DeployPipeline, release: str
) -> None:
    with LoadLoop(lb_url(pipeline)) as load:
        result = pipeline.deploy(release)
    assert result is not None and result.outcome == "rolled-back"
    assert "readiness" in result.reason
    assert releases(pipeline) == ["v1"] * 4
    assert load.failures == []
    [record] = pipeline.journal.rollouts()
    assert record.outcome == "rolled-back"
    assert "readiness" in record.end["reason"]  # type: ignore[index]
    assert {item["release"] for item in record.end["instances"]} == {"v1"}  # type: ignore[index]


def test_a_canary_with_errors_is_judged_and_rolled_back(pipeline: DeployPipeline) -> None:
    deploy = with_strategy(pipeline, "canary", canary_steps=[50, 100], canary_min_requests=10)
    with LoadLoop(lb_url(pipeline)):
        result = deploy.deploy("errors-50pct")
    assert result is not None and result.outcome == "rolled-back"
    assert "canary" in result.reason
    assert releases(pipeline) == ["v1"] * 4
    canary_slots = {"sample-5"}
    assert canary_slots.isdisjoint(item.name for item in pipeline.sandbox.backend.instances())


def test_rollback_returns_to_the_previous_release(pipeline: DeployPipeline) -> None:
    assert pipeline.deploy("v2") is not None
    result = pipeline.rollback()
    assert result.succeeded and result.to_release.label == "v1"
    assert releases(pipeline) == ["v1"] * 4
    assert [record.begin["kind"] for record in pipeline.journal.rollouts()] == [
        "deploy",
        "rollback",
    ]


def test_deploying_the_running_release_changes_nothing(pipeline: DeployPipeline) -> None:
    pipeline.deploy("v1")  # a fresh build of v1 (its git revision may differ from the image's)
    before = [item.digest for item in pipeline.sandbox.backend.instances()]
    assert pipeline.deploy("v1") is None
    assert [item.digest for item in pipeline.sandbox.backend.instances()] == before


def run_invoke(*args: str, config: Path, **popen: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "invoke", *args, "--config", str(config)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        **popen,  # type: ignore[arg-type]
    )


def wait_for_steps(journal: Journal, count: int, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        rollouts = journal.rollouts()
        if rollouts and len(rollouts[-1].steps) >= count:
            return
        time.sleep(0.1)
    raise AssertionError(f"the rollout did not reach {count} steps in {timeout_s} s")


def assert_no_process_mentions(text: str, timeout_s: float = 10) -> None:
    """No process (e.g. a Locust left behind by a killed orchestrator) names ``text``."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = [
            pid.name
            for pid in Path("/proc").iterdir()
            if pid.name.isdigit() and text in _cmdline(pid)
        ]
        if not found or time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    assert found == [], f"processes still running for {text}: {found}"


def _cmdline(pid: Path) -> str:
    try:
        return (pid / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def test_a_killed_orchestrator_is_recovered_by_the_next_deploy(
    pipeline: DeployPipeline,
) -> None:
    path = Path(pipeline.config.root) / "cautious.yaml"
    first = run_invoke("deploy", "--release", "v2", config=path, start_new_session=True)
    try:
        wait_for_steps(pipeline.journal, 2)  # sample-1 retired and restarted on v2
        os.kill(first.pid, signal.SIGKILL)
    finally:
        first.wait(30)
    assert pipeline.journal.unfinished(), "the killed rollout left no unfinished record"
    assert_no_process_mentions(str(pipeline.config.root))
    assert "v2" in releases(pipeline) and "v1" in releases(pipeline)
    second = run_invoke("deploy", "--release", "v2", config=path)
    _, stderr = second.communicate(timeout=300)
    assert second.returncode == 0, stderr
    assert releases(pipeline) == ["v2"] * 4
    outcomes = [record.outcome for record in pipeline.journal.rollouts()]
    assert outcomes == ["aborted", "succeeded"]
    history = subprocess.run(
        [sys.executable, "-m", "invoke", "history", "--config", str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert "aborted" in history.stdout + history.stderr


def test_sigterm_mid_rollout_rolls_back_to_one_known_release(pipeline: DeployPipeline) -> None:
    path = Path(pipeline.config.root) / "cautious.yaml"
    deploy = run_invoke("deploy", "--release", "v2", config=path)
    try:
        wait_for_steps(pipeline.journal, 2)
        deploy.send_signal(signal.SIGTERM)
    finally:
        _, stderr = deploy.communicate(timeout=300)
    assert deploy.returncode == 1, stderr
    assert "interrupted" in stderr
    assert releases(pipeline) == ["v1"] * 4
    [record] = pipeline.journal.rollouts()
    assert record.outcome == "rolled-back"
    assert {item["release"] for item in record.end["instances"]} == {"v1"}  # type: ignore[index]


def test_a_second_deploy_while_one_runs_is_refused(pipeline: DeployPipeline) -> None:
    path = Path(pipeline.config.root) / "cautious.yaml"
    # The subject is the lock: a second program starting beside the load generator may cost
    # it a few requests in one second, which the default success-ratio claim would count.
    first = run_invoke("deploy", "--release", "v2", "--claim", "success_ratio=0.99", config=path)
    try:
        wait_for_steps(pipeline.journal, 1)
        second = run_invoke("deploy", "--release", "v2", config=path)
        _, stderr = second.communicate(timeout=60)
        assert second.returncode == 2
        assert "a rollout is already running" in stderr
        assert len(stderr.strip().splitlines()) == 1
    finally:
        _, first_err = first.communicate(timeout=300)
    assert first.returncode == 0, first_err


def test_failing_tests_build_nothing(
    tmp_path: Path, docker_client: docker.DockerClient, torn_down_clusters: list[Config]
) -> None:
    # A service name of its own: an image built by a test running beside this one is not ours.
    service = f"untested-{uuid.uuid4().hex[:8]}"
    path = cluster_config(tmp_path, service={"test_command": "exit 3", "name": service})
    config = load_config(path)
    torn_down_clusters.append(config)
    result = run_invoke("deploy", "--release", "slow-responses", config=path)
    _, stderr = result.communicate(timeout=120)
    assert result.returncode == 1
    assert "tests failed" in stderr and "nothing was built" in stderr
    assert docker_client.images.list(name=f"cautious/{service}") == []
    # The deploy lock lives in the cluster's state container (the store every checkout shares);
    # no instance and no load balancer was started.
    left = docker_client.containers.list(
        all=True, filters={"label": f"cautious.cluster={config.cluster.name}"}
    )
    assert [item.labels.get("cautious.role") for item in left] in ([], ["state"])
