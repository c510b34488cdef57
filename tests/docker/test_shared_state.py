"""State with the cluster on a real engine: two clones of the repository deploying to one
cluster share its lock and its history (kept in a labelled volume, not in either checkout)."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
import yaml
from cautious.cluster.sandbox import Sandbox
from cautious.config import Config, load_config
from cautious.rollout.journal import Journal

from tests.docker.helpers import REPO, assert_nothing_left

pytestmark = pytest.mark.docker

ROLLOUT = {"bake_s": 1, "ready_timeout_s": 30, "drain_timeout_s": 5, "stop_grace_s": 5}
# The lock and the history are under test here, not availability on a busy two-core machine.
CLAIMS = {"success_ratio": 0.1, "longest_error_window_s": 120, "p99_ms": 10_000, "min_requests": 10}
LOAD = {"rate": 20, "users": 10}


def clone(tmp_path: Path, name: str, cluster: str) -> Path:
    """A fresh clone of the repository whose cautious.yaml names ``cluster``."""
    folder = tmp_path / name
    subprocess.run(
        ["git", "clone", "--quiet", "--local", str(REPO), str(folder)], check=True, timeout=120
    )
    path = folder / "cautious.yaml"
    raw = yaml.safe_load(path.read_text())
    raw["cluster"].update({"name": cluster, "instances": 2})
    raw["service"]["test_command"] = "true"
    raw["lb"] = {"check_interval_ms": 1000, "rise": 2, "fall": 5}  # patient on a busy machine
    raw["rollout"] = {**raw.get("rollout", {}), **ROLLOUT}
    raw["claims"] = {**raw["claims"], **CLAIMS}
    raw["load"] = {**raw["load"], **LOAD}
    path.write_text(yaml.safe_dump(raw))
    return path


def invoke(*args: str, config: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "invoke", *args, "--config", str(config)],
        cwd=config.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )


@pytest.fixture
def clones(tmp_path: Path, docker_client: docker.DockerClient) -> Iterator[tuple[Path, Path]]:
    cluster = f"t{uuid.uuid4().hex[:8]}"
    first, second = clone(tmp_path, "a", cluster), clone(tmp_path, "b", cluster)
    config = load_config(first)
    try:
        Sandbox(config, say=lambda _: None).up(2, "v1")
        yield first, second
    finally:
        Sandbox(config, say=lambda _: None).down()
        assert_nothing_left(docker_client, cluster)


def releases(config: Config) -> list[str]:
    return sorted(item.release for item in Sandbox(config, say=lambda _: None).backend.instances())


def test_two_clones_deploying_at_once_one_proceeds_and_the_other_names_the_holder(
    clones: tuple[Path, Path],
) -> None:
    deploys = [invoke("deploy", "--release", "v2", config=path) for path in clones]
    outputs = [process.communicate(timeout=600) for process in deploys]
    finished = [(p.returncode, out, err) for p, (out, err) in zip(deploys, outputs, strict=True)]
    codes = sorted(code for code, _, _ in finished)
    assert codes == [0, 2], finished
    [refusal] = [err for code, _, err in finished if code == 2]
    assert len(refusal.strip().splitlines()) == 1, refusal
    assert "a rollout is already running" in refusal
    assert all(word in refusal for word in ("held by", " on ", "pid ", "since ")), refusal

    loser = clones[[code for code, _, _ in finished].index(2)]
    back = invoke("rollback", config=loser)
    _, stderr = back.communicate(timeout=600)
    assert back.returncode == 0, stderr
    config = load_config(loser)
    assert releases(config) == ["v1", "v1"]
    journal = Journal.of(config, Sandbox(config, say=lambda _: None).backend)
    assert [(r.begin["kind"], r.to_release) for r in journal.rollouts()] == [
        ("deploy", "v2"),
        ("rollback", "v1"),
    ]
    assert not any((path.parent / ".cautious" / config.cluster.name).exists() for path in clones)
