"""Fixtures for tests that drive a real Docker engine.

Each test cluster has its own name (so it never touches a developer's ``sandbox``) and is torn
down afterwards; the teardown asserts that nothing carrying the cluster's label is left. Without
an engine these tests skip locally and *fail* under CI=true.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from pipeline.backends.docker import connect
from pipeline.config import Config, load_config
from pipeline.exceptions import PrerequisiteError
from pipeline.sandbox import Sandbox

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def docker_client() -> docker.DockerClient:
    try:
        return connect()
    except PrerequisiteError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and {exc}")
        pytest.skip(str(exc))


def cluster_config(tmp_path: Path, **sections: dict[str, object]) -> Path:
    """A copy of the repo's cautious.yaml with a unique cluster name and faster checks."""
    import yaml

    raw = yaml.safe_load((REPO / "cautious.yaml").read_text())
    raw["service"]["context"] = str(REPO / "sandbox" / "app")
    raw["load"]["locustfile"] = str(REPO / "sandbox" / "locustfile.py")
    raw["cluster"]["name"] = f"t{uuid.uuid4().hex[:8]}"
    raw["lb"] = {"check_interval_ms": 300, "rise": 2, "fall": 2}
    raw["state_dir"] = str(tmp_path / "state")
    raw["reports_dir"] = str(tmp_path / "reports")
    for section, values in sections.items():
        raw.setdefault(section, {}).update(values)
    path = tmp_path / "cautious.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def assert_nothing_left(client: docker.DockerClient, cluster: str) -> None:
    label = f"cautious.cluster={cluster}"
    assert client.containers.list(all=True, filters={"label": label}) == []
    assert client.networks.list(filters={"label": label}) == []


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
