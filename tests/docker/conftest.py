"""Fixtures for tests that drive a real Docker engine.

Each test cluster has its own name (so it never touches a developer's ``sandbox``) and is torn
down afterwards; the teardown asserts that nothing carrying the cluster's label is left. Without
an engine these tests skip locally and *fail* under CI=true.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from cautious.cluster.sandbox import Sandbox
from cautious.config import Config, load_config

from tests.docker.helpers import assert_nothing_left, cluster_config


@pytest.fixture
def config(tmp_path: Path, docker_client: docker.DockerClient) -> Config:
    return load_config(cluster_config(tmp_path))


@pytest.fixture
def sandbox(config: Config, docker_client: docker.DockerClient) -> Iterator[Sandbox]:
    box = Sandbox(config, say=lambda _: None)
    try:
        yield box
    finally:
        box.down()
        assert_nothing_left(docker_client, config.cluster.name)


@pytest.fixture
def torn_down_clusters(docker_client: docker.DockerClient) -> Iterator[list[Config]]:
    """Configurations whose clusters are torn down (and checked empty) after the test."""
    made: list[Config] = []
    yield made
    for config in made:
        Sandbox(config, say=lambda _: None).down()
        assert_nothing_left(docker_client, config.cluster.name)
