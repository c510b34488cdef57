"""The fake backend and LB behave as scripted, so tests on them mean what they say."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest
from cautious.backends.base import Backend, InstanceSpec
from cautious.backends.fake import Behaviour, FakeBackend, FakeLb
from cautious.exceptions import SandboxError

from tests.unit.fakes import fake_cluster, fake_config


def backend(tmp_path: Path, **behaviours: Behaviour) -> FakeBackend:
    return FakeBackend(fake_config(tmp_path), say=lambda _: None, behaviours=behaviours)


def start(fake: FakeBackend, slot: str, label: str) -> None:
    release = fake.build_release(label, {}, None)
    fake.start(InstanceSpec(slot=slot, release=release, port=8000))


def test_the_fake_is_a_backend(tmp_path: Path) -> None:
    assert isinstance(backend(tmp_path), Backend)


def test_an_instance_answers_ready_once_its_start_up_time_has_passed(tmp_path: Path) -> None:
    fake = backend(tmp_path, slow=Behaviour(startup_s=0.05))
    start(fake, "sample-1", "slow")
    assert fake.probe("sample-1", "/ready", timeout_s=1) == 503
    time.sleep(0.06)
    assert fake.probe("sample-1", "/ready", timeout_s=1) == 200


def test_successive_starts_follow_the_scripted_start_up_times(tmp_path: Path) -> None:
    fake = backend(tmp_path, tail=Behaviour(startup_s=(0.0, 60.0)))
    start(fake, "sample-1", "tail")
    start(fake, "sample-2", "tail")
    assert fake.probe("sample-1", "/ready", timeout_s=1) == 200
    assert fake.probe("sample-2", "/ready", timeout_s=1) == 503


def test_a_release_that_crashes_on_start_exits_with_its_code_and_says_why(tmp_path: Path) -> None:
    fake = backend(tmp_path, crash=Behaviour(exit_after_s=0.0, exit_code=3))
    start(fake, "sample-1", "crash")
    instance = fake.instance("sample-1")
    assert (instance.state, instance.exit_code) == ("exited", 3)
    assert "fatal error" in fake.logs("sample-1")


def test_the_same_label_and_environment_build_the_same_digest(tmp_path: Path) -> None:
    fake = backend(tmp_path)
    first = fake.build_release("v1", {"A": "1"}, None)
    assert fake.build_release("v1", {"A": "1"}, None).digest == first.digest
    assert fake.build_release("v1", {"A": "2"}, None).digest != first.digest
    assert fake.release_by_digest("old-name", first.digest).label == "old-name"


def test_a_build_that_is_gone_is_a_sandbox_error(tmp_path: Path) -> None:
    with pytest.raises(SandboxError, match="gone"):
        backend(tmp_path).release_by_digest("v1", "sha256:unknown")


def test_sigkill_and_sigterm_end_an_instance_and_other_signals_do_not(tmp_path: Path) -> None:
    fake = backend(tmp_path)
    start(fake, "sample-1", "v1")
    assert fake.kill("sample-1", "SIGHUP") == "running"
    assert fake.kill("sample-1", "SIGKILL") == "exited"
    assert fake.instance("sample-1").exit_code == 137


def test_a_paused_instance_answers_nothing_until_thawed(tmp_path: Path) -> None:
    fake = backend(tmp_path)
    start(fake, "sample-1", "v1")
    fake.pause("sample-1")
    assert (fake.instance("sample-1").state, fake.probe("sample-1", "/", timeout_s=1)) == (
        "paused",
        0,
    )
    fake.unpause("sample-1")
    assert fake.probe("sample-1", "/", timeout_s=1) == 200


def lb_of(tmp_path: Path, **behaviours: Behaviour) -> tuple[FakeBackend, FakeLb]:
    fake = backend(tmp_path, **behaviours)
    fake.ensure_lb("")
    assert fake.fake_lb is not None
    return fake, fake.fake_lb


def test_the_fake_lb_spreads_requests_by_weight(tmp_path: Path) -> None:
    fake, lb = lb_of(tmp_path)
    start(fake, "sample-1", "v1")
    start(fake, "sample-2", "v1")
    lb.set_weight("sample-1", 3)
    served = Counter(lb.request().instance for _ in range(400))
    assert served == {"sample-1": 300, "sample-2": 100}


def test_only_servers_that_are_up_and_ready_get_requests(tmp_path: Path) -> None:
    fake, lb = lb_of(tmp_path, hang=Behaviour(ready=False))
    start(fake, "sample-1", "v1")
    start(fake, "sample-2", "hang")
    start(fake, "sample-3", "v1")
    lb.set_state("sample-3", "drain")
    assert {lb.request().instance for _ in range(10)} == {"sample-1"}
    stats = lb.stats()
    assert (stats["sample-2"].status, stats["sample-3"].status) == ("DOWN", "DRAIN")
    assert stats["sample-4"].status == "MAINT (resolution)"


def test_no_server_in_rotation_answers_503(tmp_path: Path) -> None:
    _, lb = lb_of(tmp_path)
    assert lb.request().status == 503


def test_a_release_s_error_ratio_is_answered_exactly_and_counted_as_5xx(tmp_path: Path) -> None:
    fake, lb = lb_of(tmp_path, bad=Behaviour(error_ratio=0.1))
    start(fake, "sample-1", "bad")
    statuses = Counter(lb.request().status for _ in range(100))
    assert statuses == {200: 90, 500: 10}
    assert (lb.server("sample-1").total_sessions, lb.server("sample-1").responses_5xx) == (100, 10)


def test_dropped_connections_answer_status_0(tmp_path: Path) -> None:
    fake, lb = lb_of(tmp_path, flaky=Behaviour(drop_ratio=0.5))
    start(fake, "sample-1", "flaky")
    assert Counter(lb.request().status for _ in range(10)) == {0: 5, 200: 5}


def test_reading_the_stats_sends_the_traffic_owed_since_the_last_read(tmp_path: Path) -> None:
    cluster = fake_cluster(tmp_path, traffic_per_s=10_000)
    cluster.lb.stats()
    time.sleep(0.02)
    total = sum(stat.total_sessions for stat in cluster.lb.stats().values())
    assert total >= 200


def test_an_lb_restart_forgets_flags_and_weights(tmp_path: Path) -> None:
    fake, lb = lb_of(tmp_path)
    start(fake, "sample-1", "v1")
    lb.set_state("sample-1", "maint")
    lb.set_weight("sample-1", 9)
    fake.restart_lb(grace_s=0)
    assert (lb.server("sample-1").status, lb.server("sample-1").weight) == ("UP", 1)


def test_teardown_removes_every_instance_and_the_lb(tmp_path: Path) -> None:
    cluster = fake_cluster(tmp_path)
    removed = cluster.backend.teardown()
    assert len(removed) == 5
    assert cluster.backend.instances() == [] and cluster.backend.lb() is None
