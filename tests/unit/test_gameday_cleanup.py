"""After an experiment the game day checks the cluster itself and restores it (fake backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cautious.gameday.cleanup import check_cluster, cluster_health

from tests.unit.fakes import FakeCluster, fake_cluster

CLEAN = {"stopped": [], "leftovers": 0, "left": "", "cleared": []}


@pytest.fixture
def cluster(tmp_path: Path) -> FakeCluster:
    return fake_cluster(tmp_path)


def check(cluster: FakeCluster, run_state: dict[str, Any] | None) -> dict[str, Any]:
    return check_cluster(cluster.sandbox, run_state, cluster.said.append, settle_s=0.2)


def test_a_cluster_left_as_found_is_no_problem(cluster: FakeCluster) -> None:
    result = check(cluster, {"cleanup": CLEAN, "baseline_release": "v1"})
    assert result == {"healthy": "4/4", "releases": {"v1": 4}, "leftovers": 0}


def test_a_dead_instance_fails_the_experiment_and_the_cluster_is_restored(
    cluster: FakeCluster,
) -> None:
    cluster.backend.kill("sample-2", "SIGKILL")
    assert cluster_health(cluster.sandbox).unhealthy == 1

    result = check(cluster, {"cleanup": CLEAN, "baseline_release": "v1"})

    assert result["problem"] == "after the experiment: 3/4 instances healthy"
    assert result["restored"].startswith("on v1")
    assert cluster_health(cluster.sandbox).unhealthy == 0
    assert cluster.releases() == {f"sample-{n}": "v1" for n in range(1, 5)}


def test_a_fault_left_behind_fails_the_experiment(cluster: FakeCluster) -> None:
    leftovers = {**CLEAN, "leftovers": 1, "left": "qdiscs sample-1", "cleared": ["netem"]}
    result = check(cluster, {"cleanup": leftovers})
    assert result["problem"] == (
        "after the experiment: faults left behind: qdiscs sample-1 (cleared: ['netem'])"
    )


def test_without_the_controls_record_nothing_proves_the_faults_are_gone(
    cluster: FakeCluster,
) -> None:
    result = check(cluster, None)
    assert "left no cleanup record" in result["problem"]
    assert result["restored"] == "on v1"
