"""``cautious audit`` on a real engine: after normal rollouts it passes; a container started by
hand on the cluster's network and an instance whose image was swapped under the same name and
labels are named, and a deploy refuses to start on them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from cautious.config import Config, load_config
from cautious.deploy import DeployPipeline

from tests.docker.helpers import REPO, assert_nothing_left, cluster_config

pytestmark = pytest.mark.docker

ROLLOUT = {"bake_s": 1, "ready_timeout_s": 30, "drain_timeout_s": 5, "stop_grace_s": 5}


def run(program: list[str], *args: str, config: Config) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*program, *args, "--config", str(Path(config.root) / "cautious.yaml")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
        check=False,
    )


INVOKE = [sys.executable, "-m", "invoke"]


@pytest.fixture
def pipeline(tmp_path: Path, docker_client: docker.DockerClient) -> Iterator[DeployPipeline]:
    path = cluster_config(
        tmp_path, service={"test_command": "true"}, rollout=ROLLOUT, cluster={"instances": 2}
    )
    deploy = DeployPipeline(load_config(path), say=lambda _: None)
    try:
        deploy.sandbox.up(2, "v1")
        result = deploy.deploy("v2")
        assert result is not None and result.succeeded, result
        yield deploy
    finally:
        deploy.sandbox.down()
        assert_nothing_left(docker_client, deploy.config.cluster.name)


@pytest.fixture
def stranger(pipeline: DeployPipeline, docker_client: docker.DockerClient) -> Iterator[str]:
    """A container someone started by hand on the cluster's network."""
    name = f"hand-{pipeline.config.cluster.name}"
    docker_client.containers.run(
        pipeline.config.service.base_image,
        ["sleep", "600"],
        name=name,
        network=f"cautious-{pipeline.config.cluster.name}",
        detach=True,
    )
    try:
        yield name
    finally:
        docker_client.containers.get(name).remove(force=True)


def test_the_audit_passes_after_normal_rollouts_from_both_programs(
    pipeline: DeployPipeline,
) -> None:
    cautious = shutil.which("cautious")
    assert cautious is not None, "the cautious program is not installed"
    for program in (INVOKE, [cautious]):
        done = run(program, "audit", config=pipeline.config)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "no drift" in done.stdout


def test_a_container_started_by_hand_is_named_and_stops_the_next_deploy(
    pipeline: DeployPipeline, stranger: str
) -> None:
    done = run(INVOKE, "audit", config=pipeline.config)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"stranger: {stranger}: runs " in done.stdout
    refused = run(INVOKE, "deploy", "--release", "v1", config=pipeline.config)
    assert refused.returncode == 1, refused.stderr
    assert "drifted from its journal" in refused.stderr and stranger in refused.stderr
    assert sorted(item.release for item in pipeline.sandbox.backend.instances()) == ["v2"] * 2


def test_an_instance_whose_image_was_replaced_outside_cautious_is_named(
    pipeline: DeployPipeline, docker_client: docker.DockerClient
) -> None:
    name = f"cautious-{pipeline.config.cluster.name}-sample-1"
    original = docker_client.containers.get(name)
    labels, network = original.labels, f"cautious-{pipeline.config.cluster.name}"
    original.remove(force=True)
    docker_client.containers.run(  # the same name and labels, another image
        pipeline.config.service.base_image,
        ["sleep", "600"],
        name=name,
        labels=labels,
        network=network,
        detach=True,
    )
    done = run(INVOKE, "audit", config=pipeline.config)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "image: sample-1: runs image " in done.stdout
    assert "but the journal says v2" in done.stdout
