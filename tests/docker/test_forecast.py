"""The dry run's expected rollout time against the measured one, on the real sandbox.

Five deploys after a short history: each time the estimate ``deploy --dry-run`` prints (its
p50) is compared with the rollout that follows. About 4 minutes: marked ``slow`` (CAUTIOUS_SLOW=1).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from cautious.config import load_config
from cautious.deploy import DeployPipeline
from cautious.rollout.startup import estimate_rollout

from tests.docker.helpers import assert_nothing_left, cluster_config

pytestmark = [
    pytest.mark.docker,
    pytest.mark.slow,
    pytest.mark.skipif(not os.environ.get("CAUTIOUS_SLOW"), reason="slow: set CAUTIOUS_SLOW=1"),
]

HISTORY = 4  # deploys before the first estimate: start-ups of both releases in the journal
MEASURED = 5
ROLLOUT = {"bake_s": 1, "ready_timeout_s": 15, "drain_timeout_s": 5, "stop_grace_s": 5}


@pytest.fixture
def pipeline(tmp_path: Path, docker_client: docker.DockerClient) -> Iterator[DeployPipeline]:
    config = load_config(
        cluster_config(tmp_path, service={"test_command": "true"}, rollout=ROLLOUT)
    )
    deploy = DeployPipeline(config, say=lambda _: None)
    try:
        deploy.sandbox.up(3, "v1")
        yield deploy
    finally:
        deploy.sandbox.down()
        assert_nothing_left(docker_client, config.cluster.name)


def test_the_dry_run_estimate_is_within_20_percent_of_the_measured_rollout(
    pipeline: DeployPipeline,
) -> None:
    for index in range(HISTORY):
        result = pipeline.deploy(("v2", "v1")[index % 2])
        assert result is not None and result.succeeded, result and result.reason
    compared = []
    for index in range(MEASURED):
        release = ("v2", "v1")[index % 2]
        estimate = estimate_rollout(pipeline.dry_run(), release, pipeline.journal.rollouts())
        assert estimate is not None
        result = pipeline.deploy(release)
        assert result is not None and result.succeeded, result and result.reason
        compared.append((round(estimate.p50_s, 1), round(result.ended - result.started, 1)))
    errors = [abs(estimated - measured) / measured for estimated, measured in compared]
    print("estimated vs measured (s):", compared)
    assert max(errors) <= 0.2, compared
