"""The stateful sample on a real PostgreSQL: releases, hooks and the data check, by hand.

The images are built on the offline base image (PostgreSQL and psycopg2 from Debian's
packages); containers and the network carry a unique cluster label and are removed after.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.models.containers
import pytest
import requests
from cautious.backends.docker.baseimage import ensure_base_image
from cautious.backends.docker.images import build_image, managed_labels

from tests.docker.helpers import REPO, assert_nothing_left

BASE = "cautious/base:bookworm"
PG_ENV = {"PGHOST": "db", "PGUSER": "app", "PGPASSWORD": "app", "PGDATABASE": "app"}
RELEASES = {
    "v1": {"APP_WRITE_COLUMNS": "name", "APP_READ_COLUMN": "name"},
    "v2-expand": {"APP_WRITE_COLUMNS": "name,full_name", "APP_READ_COLUMN": "name"},
    "v2-migrate": {"APP_WRITE_COLUMNS": "name,full_name", "APP_READ_COLUMN": "full_name"},
    "v2": {"APP_WRITE_COLUMNS": "full_name", "APP_READ_COLUMN": "full_name"},
}


@dataclass
class Stack:
    """A database and the app's image on one labelled network."""

    client: docker.DockerClient
    cluster: str
    network: str
    image: str

    def run(self, name: str, **kwargs: object) -> docker.models.containers.Container:
        return self.client.containers.run(
            detach=True,
            name=f"cautious-{self.cluster}-{name}",
            network=self.network,
            labels=managed_labels(cluster=self.cluster),
            **kwargs,
        )

    def app(self, release: str) -> str:
        """Start the app on ``release``; its URL on loopback."""
        container = self.run(
            f"{release}-{uuid.uuid4().hex[:4]}",
            image=self.image,
            environment={**PG_ENV, **RELEASES[release], "CAUTIOUS_RELEASE": release},
            ports={"8000/tcp": ("127.0.0.1", None)},
        )
        container.reload()
        port = container.ports["8000/tcp"][0]["HostPort"]
        return f"http://127.0.0.1:{port}"

    def hook(self, *args: str, acked: Path | None = None) -> tuple[int, str]:
        """Run ``hooks.py ARGS`` in a one-off container of the app image."""
        volumes = {str(acked): {"bind": "/acked.jsonl", "mode": "ro"}} if acked else {}
        container = self.run(
            f"hook-{uuid.uuid4().hex[:6]}",
            image=self.image,
            command=["python3", "/app/hooks.py", *args],
            environment=PG_ENV,
            volumes=volumes,
        )
        try:
            code = int(container.wait(timeout=60)["StatusCode"])
            return code, container.logs().decode()
        finally:
            container.remove(force=True)


@pytest.fixture(scope="module")
def images(docker_client: docker.DockerClient) -> tuple[str, str]:
    ensure_base_image(docker_client, BASE, say=lambda _: None)
    labels = managed_labels(role="test-image")
    database = build_image(
        docker_client,
        "postgres",
        path=str(REPO / "sandbox" / "postgres"),
        tag="cautious/test-postgres:latest",
        labels=labels,
    )
    app = build_image(
        docker_client,
        "stateful sample",
        path=str(REPO / "sandbox" / "stateful"),
        tag="cautious/test-stateful:latest",
        labels=labels,
    )
    return database, app


@pytest.fixture
def stack(docker_client: docker.DockerClient, images: tuple[str, str]) -> Iterator[Stack]:
    cluster = f"t{uuid.uuid4().hex[:8]}"
    label = managed_labels(cluster=cluster)
    network = docker_client.networks.create(f"cautious-{cluster}", labels=label)
    stack = Stack(docker_client, cluster, network.name or "", images[1])
    try:
        database = stack.run("db", image=images[0])
        network.disconnect(database)
        network.connect(database, aliases=["db"])
        _wait_database(database)
        yield stack
    finally:
        for container in docker_client.containers.list(
            all=True, filters={"label": f"cautious.cluster={cluster}"}
        ):
            container.remove(force=True)
        network.remove()
        assert_nothing_left(docker_client, cluster)


def _wait_database(container: docker.models.containers.Container) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        code, _ = container.exec_run(
            ["pg_isready", "-q", "-h", "127.0.0.1", "-U", "app", "-d", "app"]
        )
        if code == 0:
            return
        time.sleep(0.3)
    pytest.fail(f"PostgreSQL never became ready: {container.logs().decode()[-500:]}")


def _ready(url: str, *, within_s: float = 20) -> requests.Response:
    """Poll /ready until it answers 200; after ``within_s``, the last answer (or a failure)."""
    deadline = time.monotonic() + within_s
    last: requests.Response | None = None
    while time.monotonic() < deadline:
        with contextlib.suppress(requests.ConnectionError):
            last = requests.get(url + "/ready", timeout=2)
        if last is not None and last.ok:
            return last
        time.sleep(0.2)
    if last is None:
        pytest.fail(f"{url} never answered /ready")
    return last


def _put(url: str, user_id: str, name: str) -> requests.Response:
    return requests.put(f"{url}/users/{user_id}", json={"name": name}, timeout=3)


def test_writes_survive_a_three_legged_column_rename(stack: Stack, tmp_path: Path) -> None:
    acked: dict[str, str] = {}

    def write(url: str, name: str) -> None:
        user_id = uuid.uuid4().hex
        response = _put(url, user_id, name)
        assert response.status_code == 201, response.text
        assert response.headers["X-Release"]
        acked[user_id] = name

    v1 = stack.app("v1")
    assert _ready(v1).ok
    write(v1, "Zoë")
    write(v1, "Ada")

    early_v2 = stack.app("v2")
    refused = _ready(early_v2, within_s=3)
    assert refused.status_code == 503 and "full_name" in refused.json()["phase"]

    assert stack.hook("expand")[0] == 0
    expand = stack.app("v2-expand")
    assert _ready(expand).ok
    write(expand, "Grace")
    write(v1, "Linus")  # old and new side by side: the old one still writes only `name`
    path = tmp_path / "acked.jsonl"
    path.write_text("".join(json.dumps({"id": k, "name": v}) + "\n" for k, v in acked.items()))
    assert stack.hook("check", "--acked", "/acked.jsonl", acked=path)[0] == 0
    code, output = stack.hook("check", "--require-full-name", acked=path)
    assert code == 1 and json.loads(output)["full_name_missing"] == 3  # Zoë, Ada, Linus

    code, output = stack.hook("backfill", "--batch", "2", "--pause-ms", "0")
    assert code == 0 and "event=backfilled rows=3" in output
    migrate = stack.app("v2-migrate")
    assert _ready(migrate).ok
    assert requests.get(f"{migrate}/users/{next(iter(acked))}", timeout=3).json()["name"] == "Zoë"

    assert _ready(stack.app("v2")).ok
    assert stack.hook("contract")[0] == 0
    code, output = stack.hook("check", "--acked", "/acked.jsonl", "--require-full-name", acked=path)
    summary = json.loads(output)
    assert code == 0, output
    assert summary["columns"] == ["full_name"] and summary["acked"] == 4
    assert (
        _ready(v1, within_s=2).status_code == 503
    )  # the old release cannot serve the contracted schema


def test_the_data_check_names_a_lost_write(stack: Stack, tmp_path: Path) -> None:
    v1 = stack.app("v1")
    assert _ready(v1).ok
    assert _put(v1, "kept", "Kept").status_code == 201
    path = tmp_path / "acked.jsonl"
    path.write_text('{"id": "kept", "name": "Kept"}\n{"id": "lost", "name": "Lost"}\n')
    code, output = stack.hook("check", "--acked", "/acked.jsonl", acked=path)
    assert code == 1
    assert json.loads(output)["examples"]["missing"] == [{"id": "lost", "acked": "Lost"}]


def test_the_subtle_release_folds_accents_only_on_single_reads(stack: Stack) -> None:
    v1 = stack.app("v1")
    assert _ready(v1).ok
    assert _put(v1, "z", "Zoë").status_code == 201
    subtle = stack.run(
        "subtle",
        image=stack.image,
        environment={**PG_ENV, "APP_ASCII_NAMES": "1"},
        ports={"8000/tcp": ("127.0.0.1", None)},
    )
    subtle.reload()
    url = f"http://127.0.0.1:{subtle.ports['8000/tcp'][0]['HostPort']}"
    assert _ready(url).ok
    assert requests.get(f"{url}/users/z", timeout=3).json()["name"] == "Zoe"
    assert requests.get(f"{url}/users", timeout=3).json()["users"][0]["name"] == "Zoë"
