"""Fixtures shared by every test folder.

``docker_client``: the engine the Docker tests drive. Without one they skip locally and *fail*
under CI=true (a CI run that silently skipped its Docker tests would prove nothing).
"""

from __future__ import annotations

import os

import docker
import pytest
from cautious.backends.docker import connect
from cautious.exceptions import PrerequisiteError


@pytest.fixture(scope="session")
def docker_client() -> docker.DockerClient:
    try:
        return connect()
    except PrerequisiteError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and {exc}")
        pytest.skip(str(exc))
