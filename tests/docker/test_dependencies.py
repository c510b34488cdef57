"""Dependencies and one-off commands on the docker backend, with the PostgreSQL sample."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
import yaml
from cautious.backends.dependencies import DependencySpec
from cautious.backends.docker import stateful
from cautious.backends.docker.backend import DockerBackend
from cautious.config import load_config

from tests.docker.helpers import REPO, assert_nothing_left

PG_ENV = {"PGHOST": "db", "PGUSER": "app", "PGPASSWORD": "app", "PGDATABASE": "app"}
DATABASE = DependencySpec(
    name="db",
    port=5432,
    context=REPO / "sandbox" / "postgres",
    ready_command=("pg_isready", "-q", "-h", "127.0.0.1", "-U", "app", "-d", "app"),
)


@pytest.fixture
def backend(tmp_path: Path, docker_client: docker.DockerClient) -> Iterator[DockerBackend]:
    raw = {
        "service": {"name": "stateful", "context": str(REPO / "sandbox" / "stateful")},
        "releases": {"v1": {"env": PG_ENV}},
        "cluster": {"name": f"t{uuid.uuid4().hex[:8]}"},
        "state_dir": str(tmp_path / "state"),
    }
    path = tmp_path / "cautious.yaml"
    path.write_text(yaml.safe_dump(raw))
    box = DockerBackend(load_config(path), client=docker_client, say=lambda _: None)
    try:
        yield box
    finally:
        box.teardown()
        assert_nothing_left(docker_client, box.cluster)


def test_a_dependency_starts_once_and_hooks_run_beside_it(backend: DockerBackend) -> None:
    first = stateful.ensure_dependency(backend, DATABASE)
    again = stateful.ensure_dependency(backend, DATABASE)
    assert first.started and not again.started
    assert first.address == "db:5432"

    release = backend.build_release("v1", PG_ENV, None)
    expand = stateful.run_once(
        backend, release, ["python3", "/app/hooks.py", "expand"], env=PG_ENV, timeout_s=60
    )
    assert expand.exit_code == 0, expand.output
    assert "event=expanded" in expand.output

    acked = b'{"id": "nobody", "name": "Lost"}\n'
    check = stateful.run_once(
        backend,
        release,
        ["python3", "/app/hooks.py", "check", "--acked", "/cautious/acked.jsonl"],
        env=PG_ENV,
        timeout_s=60,
        files={"/cautious/acked.jsonl": acked},
    )
    assert check.exit_code == 1
    assert json.loads(check.output.strip().splitlines()[-1])["missing"] == 1


def test_a_one_off_past_its_timeout_is_killed(backend: DockerBackend) -> None:
    release = backend.build_release("v1", PG_ENV, None)
    slow = stateful.run_once(backend, release, ["sleep", "60"], env={}, timeout_s=1)
    assert slow.exit_code is None
    assert slow.seconds < 20
