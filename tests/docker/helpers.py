"""Shared pieces of the Docker tests: test clusters, teardown checks, a steady load loop."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any

import docker
import requests
import yaml

REPO = Path(__file__).resolve().parents[2]


def get(url: str) -> requests.Response:
    return requests.get(url, timeout=3)


def cluster_config(tmp_path: Path, **sections: dict[str, Any]) -> Path:
    """A copy of the repo's cautious.yaml with a unique cluster name and faster checks."""
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
    assert client.volumes.list(filters={"label": label}) == []


class LoadLoop:
    """A bounded fixed-rate request loop in a thread, recording every outcome."""

    def __init__(self, url: str, rate: float = 50.0, max_seconds: float = 60.0) -> None:
        self.url = url
        self.interval = 1.0 / rate
        self.max_seconds = max_seconds
        self.outcomes: list[tuple[int, str, str]] = []  # status, instance, release
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                response = get(self.url + "/")
                instance = response.headers.get("X-Instance", "")
                release = response.headers.get("X-Release", "")
                self.outcomes.append((response.status_code, instance, release))
            except requests.RequestException as exc:
                self.outcomes.append((0, type(exc).__name__, ""))
            self._stop.wait(self.interval)

    def __enter__(self) -> LoadLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    @property
    def failures(self) -> list[tuple[int, str, str]]:
        return [outcome for outcome in self.outcomes if outcome[0] != 200]
