"""Shadow comparison on the stateful sample under load: a subtle release is caught out of
rotation; a release whose only difference is ignored by configuration passes the shadow gate."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from cautious.cluster.sandbox import Sandbox
from cautious.config import Config
from cautious.deploy import DeployPipeline
from cautious.legged import deploy_legs

from tests.docker.stateful import stateful_config

# Each run is a full canary under load: two in every CI run, the series of ten with CAUTIOUS_SLOW=1.
RUNS = 10 if os.environ.get("CAUTIOUS_SLOW") else 2


def shadow_config(tmp_path: Path, leg: dict[str, Any]) -> Config:
    return stateful_config(
        tmp_path,
        legs=[leg],
        data_check=None,
        **{
            "canary.shadow": True,
            "canary.bake_s": 5,
            "canary.max_extension_s": 0,
            "rollout.canary_steps": [50, 100],
        },
    )


def test_the_subtle_release_is_caught_by_the_shadow_gate(
    tmp_path: Path, torn_down_clusters: list[Config]
) -> None:
    config = shadow_config(
        tmp_path, {"name": "subtle", "release": "v1-ascii", "strategy": "canary"}
    )
    torn_down_clusters.append(config)
    for run in range(RUNS):
        result = deploy_legs(config, tmp_path / f"run-{run}", say=print)
        (leg,) = result.legs
        assert leg.state == "rolled-back", leg
        assert leg.reason.startswith("shadow: GET /users/[id] answered differently"), leg.reason
    instances = Sandbox(config, say=lambda _: None).backend.instances()
    assert {item.release for item in instances} == {"v1"}


def test_a_release_differing_only_in_ignored_fields_passes_the_shadow_gate(
    tmp_path: Path, torn_down_clusters: list[Config]
) -> None:
    expand = {"name": "add-full-name", "command": ["python3", "/app/hooks.py", "expand"]}
    leg = {"name": "expand", "release": "v2-expand", "strategy": "canary", "before": [expand]}
    config = shadow_config(tmp_path, leg)
    torn_down_clusters.append(config)
    deploy_legs(config, tmp_path / "legs", say=print)
    sandbox = Sandbox(config, say=lambda _: None)
    records = DeployPipeline(config, sandbox=sandbox, say=lambda _: None).journal.rollouts()
    shadow = [step for step in records[-1].steps if step.get("kind") == "shadow"]
    assert shadow and shadow[0]["outcome"] == "ok", shadow
    assert shadow[0]["shadow"]["verdict"] == "pass"
    assert shadow[0]["shadow"]["compared"] >= 50
