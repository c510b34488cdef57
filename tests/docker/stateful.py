"""Shared by the Docker tests of the stateful sample: its configuration for a test cluster
with fresh release images (the ``torn_down_clusters`` fixture in conftest tears them down)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from cautious.cluster.sandbox import Sandbox
from cautious.config import Config, load_config

from tests.docker.helpers import REPO

CONFIG = REPO / "sandbox" / "stateful" / "cautious.yaml"


def stateful_config(tmp_path: Path, **overrides: Any) -> Config:
    """The sample's configuration on a cluster of its own, its first release built afresh
    (``sandbox.up`` reuses a release image by its label, and the app may have changed)."""
    config = load_config(
        CONFIG,
        {
            "cluster.name": f"t{uuid.uuid4().hex[:8]}",
            "state_dir": str(tmp_path / "state"),
            "reports_dir": str(tmp_path / "reports"),
            **overrides,
        },
    )
    Sandbox(config, say=lambda _: None).release("v1", rebuild=True)
    return config
