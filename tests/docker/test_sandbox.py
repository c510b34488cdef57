"""The sandbox cluster on a real Docker engine: up, traffic, drain, kill, down."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import docker
import pytest
import requests
import yaml
from cautious.backends.docker.baseimage import ensure_base_image
from cautious.cluster.sandbox import Sandbox

from tests.docker.helpers import REPO, LoadLoop, assert_nothing_left, cluster_config, get

pytestmark = pytest.mark.docker


def answers(url: str, count: int) -> list[requests.Response]:
    return [get(url + "/") for _ in range(count)]


def test_three_instances_answer_through_the_load_balancer(sandbox: Sandbox) -> None:
    status = sandbox.up(3, "v1")
    assert status.lb_url is not None
    assert status.lb_url.startswith("http://127.0.0.1:")
    responses = answers(status.lb_url, 30)
    assert {r.status_code for r in responses} == {200}
    assert len({r.headers["X-Instance"] for r in responses}) == 3
    assert {r.headers["X-Release"] for r in responses} == {"v1"}
    assert [row.lb_state for row in status.instances] == ["UP"] * 3
    assert {row.health for row in status.instances} == {"ready"}


def test_up_again_is_a_no_op(sandbox: Sandbox) -> None:
    first = sandbox.up(2, "v1")
    second = sandbox.up(2)
    assert [(r.name, r.digest, r.address) for r in second.instances] == [
        (r.name, r.digest, r.address) for r in first.instances
    ]


def test_up_scales_the_cluster_out_and_in(sandbox: Sandbox) -> None:
    assert len(sandbox.up(2, "v1").instances) == 2
    assert len(sandbox.up(3).instances) == 3
    assert [row.name for row in sandbox.up(1).instances] == ["sample-1"]


def test_up_refuses_to_change_the_release_of_running_instances(sandbox: Sandbox) -> None:
    sandbox.up(1, "v1")
    with pytest.raises(Exception, match="invoke deploy --release v2"):
        sandbox.up(1, "v2")


def test_a_drained_instance_stops_receiving_traffic_without_a_failed_request(
    sandbox: Sandbox,
) -> None:
    status = sandbox.up(3, "v1")
    assert status.lb_url is not None
    runtime = sandbox.runtime()
    with LoadLoop(status.lb_url) as loop:
        time.sleep(1.0)  # traffic flows to all three before the drain
        runtime.set_state("sample-1", "drain")
        runtime.wait_until(["sample-1"], "idle", timeout_s=10)
        before = len(loop.outcomes)
        deadline = time.monotonic() + 15
        while len(loop.outcomes) < before + 30 and time.monotonic() < deadline:
            time.sleep(0.1)
        after_drain = loop.outcomes[before:]
    assert loop.failures == []
    assert len(after_drain) >= 30
    assert "sample-1" not in {instance for _, instance, _ in after_drain}
    assert runtime.server("sample-1").status == "DRAIN"


def test_a_killed_instance_is_taken_out_by_the_load_balancer(
    sandbox: Sandbox, docker_client: docker.DockerClient
) -> None:
    status = sandbox.up(3, "v1")
    assert status.lb_url is not None
    docker_client.containers.get(f"cautious-{sandbox.config.cluster.name}-sample-2").kill()
    runtime = sandbox.runtime()
    runtime.wait_until(["sample-2"], "down", timeout_s=10)
    responses = answers(status.lb_url, 30)
    assert {r.status_code for r in responses} == {200}
    assert {r.headers["X-Instance"] for r in responses} == {"sample-1", "sample-3"}
    killed = next(row for row in sandbox.status().instances if row.name == "sample-2")
    assert killed.state == "exited"
    assert not killed.lb_state.startswith("UP")


def test_a_release_that_crashes_on_start_leaves_its_slot_empty(sandbox: Sandbox) -> None:
    with pytest.raises(Exception, match="exited"):
        sandbox.up(1, "crash-on-start")
    assert sandbox.status().instances == []


def test_the_base_image_is_reused_once_built(
    docker_client: docker.DockerClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = ensure_base_image(docker_client, "cautious/base:bookworm", say=lambda _: None)

    def no_second_bootstrap(*args: object) -> str:
        raise AssertionError("the base image was bootstrapped again")

    monkeypatch.setattr("cautious.backends.docker.baseimage._bootstrap", no_second_bootstrap)
    assert ensure_base_image(docker_client, "cautious/base:bookworm", say=print) == first


def invoke(*args: str, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "invoke", *args, "--config", str(config)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "CAUTIOUS_CONFIG": ""},
    )


def test_the_sandbox_tasks_bring_up_report_and_remove_a_cluster(
    tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    path = cluster_config(tmp_path)
    cluster = yaml.safe_load(path.read_text())["cluster"]
    try:
        up = invoke("sandbox.up", "--instances", "3", "--release", "v1", config=path)
        assert up.returncode == 0, up.stderr
        status = json.loads(invoke("sandbox.status", "--json", config=path).stdout)
        served = Counter(get(status["lb_url"] + "/").headers["X-Instance"] for _ in range(30))
        assert len(served) == 3
    finally:
        down = invoke("sandbox.down", config=path)
    assert down.returncode == 0, down.stderr
    assert_nothing_left(docker_client, cluster["name"])


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--instances", "-1"], "cluster.instances = -1"),
        (["--instances", "many"], "--instances takes a whole number"),
        (["--release", "nope"], "release 'nope' is not declared"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_changes_nothing(
    tmp_path: Path, docker_client: docker.DockerClient, flags: list[str], expected: str
) -> None:
    path = cluster_config(tmp_path)
    result = invoke("sandbox.up", *flags, config=path)
    assert result.returncode == 2
    assert expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr
    assert_nothing_left(docker_client, yaml.safe_load(path.read_text())["cluster"]["name"])


def test_an_unknown_backend_in_the_config_exits_2(
    tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    path = cluster_config(tmp_path, cluster={"backend": "kubernetes"})
    result = invoke("sandbox.up", config=path)
    assert result.returncode == 2
    assert "cluster.backend = 'kubernetes' is not allowed" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
