"""The load-balancer seam's shared waits, on the in-memory LB."""

from __future__ import annotations

from pathlib import Path

import pytest
from cautious.exceptions import SandboxError

from tests.unit.fakes import fake_cluster


def test_waiting_for_servers_that_are_up_returns_at_once(tmp_path: Path) -> None:
    lb = fake_cluster(tmp_path).lb
    assert lb.wait_until(["sample-1", "sample-2"], "up", timeout_s=1) < 0.5


def test_a_wait_that_cannot_succeed_ends_at_its_deadline_naming_each_state(
    tmp_path: Path,
) -> None:
    lb = fake_cluster(tmp_path).lb
    lb.set_in_flight("sample-1", 3)
    with pytest.raises(SandboxError, match=r"not idle after 0\.05 s: sample-1=UP/scur=3"):
        lb.wait_until(["sample-1"], "idle", timeout_s=0.05)


def test_a_drained_server_counts_as_down(tmp_path: Path) -> None:
    lb = fake_cluster(tmp_path).lb
    lb.set_state("sample-3", "drain")
    lb.wait_until(["sample-3"], "down", timeout_s=1)
    assert not lb.server("sample-3").in_rotation


def test_an_unknown_server_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SandboxError, match="no server nope"):
        fake_cluster(tmp_path).lb.server("nope")
