"""The sandbox on the fake backend: up fills slots carefully, status joins both views, down."""

from __future__ import annotations

from pathlib import Path

import pytest
from cautious.exceptions import GateFailed, UsageError

from tests.unit.fakes import fake_cluster


def test_up_starts_the_missing_instances_on_the_release_and_puts_them_in_rotation(
    tmp_path: Path,
) -> None:
    cluster = fake_cluster(tmp_path, up=None)
    status = cluster.sandbox.up(3, "v1")
    assert [(row.name, row.release, row.health, row.lb_state) for row in status.instances] == [
        (f"sample-{n}", "v1", "ready", "UP") for n in (1, 2, 3)
    ]
    assert status.backend == "fake" and status.lb_url is not None


def test_up_again_is_a_no_op_and_scaling_down_retires_the_extras(tmp_path: Path) -> None:
    cluster = fake_cluster(tmp_path)
    assert len(cluster.sandbox.up(4).instances) == 4
    assert [row.name for row in cluster.sandbox.up(2).instances] == ["sample-1", "sample-2"]


def test_up_never_changes_the_release_of_a_running_cluster(tmp_path: Path) -> None:
    cluster = fake_cluster(tmp_path)
    with pytest.raises(UsageError, match="invoke deploy --release v2"):
        cluster.sandbox.up(4, "v2")


def test_up_replaces_an_instance_that_died(tmp_path: Path) -> None:
    cluster = fake_cluster(tmp_path)
    cluster.backend.kill("sample-2", "SIGKILL")
    status = cluster.sandbox.up(4)
    assert {row.state for row in status.instances} == {"running"}


def test_an_instance_that_cannot_start_leaves_its_slot_empty(tmp_path: Path) -> None:
    cluster = fake_cluster(tmp_path, up=None)
    with pytest.raises(GateFailed, match=r"sample-1 \(crash-on-start\).*fatal error"):
        cluster.sandbox.up(1, "crash-on-start")
    assert cluster.backend.instances() == []
    assert cluster.lb.server("sample-1").status == "MAINT"


def test_down_removes_everything_the_backend_made(tmp_path: Path) -> None:
    cluster = fake_cluster(tmp_path)
    assert len(cluster.sandbox.down()) == 5
    assert cluster.sandbox.status().instances == []
