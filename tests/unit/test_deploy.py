"""The deploy chain on the fake backend: build → sandbox → rollout, under the cluster's lock."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from cautious.audit import audit
from cautious.deploy import DeployPipeline
from cautious.exceptions import Drifted, LockHeld, SandboxError

from tests.unit.fakes import fake_cluster


def die_at_step_5(line: str) -> None:
    """Stands in for SIGKILL of the orchestrator: nothing of the runner's own handling runs."""
    if line.startswith("step 5/"):
        raise SystemExit("killed")


def test_a_deploy_brings_an_empty_sandbox_up_then_rolls_it_out(tmp_path: Path) -> None:
    cluster = fake_cluster(tmp_path, up=None)
    result = cluster.pipeline().deploy("v2")
    assert result is not None and result.outcome == "succeeded"
    assert (result.from_release.label, result.to_release.label) == ("v0", "v2")
    assert set(cluster.releases().values()) == {"v2"}


def test_a_deploy_of_the_release_that_runs_changes_nothing(tmp_path: Path) -> None:
    cluster = fake_cluster(tmp_path)
    assert cluster.pipeline().deploy("v1") is None
    assert cluster.journal.rollouts() == []


def test_a_second_rollout_is_refused_while_one_holds_the_lock(tmp_path: Path) -> None:
    cluster = fake_cluster(tmp_path)
    with cluster.journal.lock(), pytest.raises(LockHeld, match="already running"):
        cluster.pipeline().deploy("v2")
    assert set(cluster.releases().values()) == {"v1"}


def test_the_lock_is_free_again_once_a_rollout_ended(tmp_path: Path) -> None:
    cluster = fake_cluster(tmp_path)
    cluster.pipeline().deploy("crash-on-start")
    result = cluster.pipeline().deploy("v2")
    assert result is not None and result.succeeded


def test_a_deploy_first_recovers_a_rollout_whose_orchestrator_died(tmp_path: Path) -> None:
    cluster = fake_cluster(tmp_path)

    with pytest.raises(SystemExit):
        cluster.roll("v2", on_step=die_at_step_5)
    result = cluster.pipeline().deploy("v2")
    assert result is not None and result.from_release.label == "v1"
    assert [record.outcome for record in cluster.journal.rollouts()] == ["aborted", "succeeded"]


def test_rollback_goes_back_to_the_release_before_the_current_one(tmp_path: Path) -> None:
    cluster = fake_cluster(tmp_path)
    cluster.pipeline().deploy("v2")
    result = cluster.pipeline().rollback()
    assert (result.from_release.label, result.to_release.label) == ("v2", "v1")
    assert set(cluster.releases().values()) == {"v1"}


def test_rollback_without_a_previous_release_says_what_to_do(tmp_path: Path) -> None:
    cluster = fake_cluster(tmp_path)
    with pytest.raises(SandboxError, match="invoke deploy --release"):
        cluster.pipeline().rollback()


def test_a_dry_run_plans_from_the_instances_running_now(tmp_path: Path) -> None:
    cluster = fake_cluster(tmp_path)
    plan = cluster.with_rollout(strategy="blue-green").pipeline().dry_run()
    assert plan.current == ("sample-1", "sample-2", "sample-3", "sample-4")
    assert plan.final == ("sample-5", "sample-6", "sample-7", "sample-8")


def test_converge_puts_every_slot_on_one_release_and_fills_empty_ones(tmp_path: Path) -> None:
    cluster = fake_cluster(tmp_path)
    cluster.runner().retire_one("sample-2")
    cluster.runner().start_one("sample-2", cluster.release("v0"), True)
    cluster.runner().retire_one("sample-4")
    converged = cluster.pipeline().converge("v1", kind="chaos-restore")
    assert (converged.release, converged.rolled, converged.started) == (
        "v1",
        ("sample-2",),
        ("sample-4",),
    )
    assert cluster.releases() == {f"sample-{n}": "v1" for n in (1, 2, 3, 4)}
    assert [record.begin["kind"] for record in cluster.journal.rollouts()] == ["chaos-restore"]


def test_converge_first_recovers_an_interrupted_rollout(tmp_path: Path) -> None:
    cluster = fake_cluster(tmp_path)

    with pytest.raises(SystemExit):
        cluster.roll("v2", on_step=die_at_step_5)
    converged = cluster.pipeline().converge("v2")
    assert converged.recovered == 1
    assert set(cluster.releases().values()) == {"v2"}


def test_a_host_back_on_another_release_stops_deploys_until_forced_which_converges_first(
    tmp_path: Path,
) -> None:
    cluster = fake_cluster(tmp_path)

    def silence_host_of_sample_3(line: str) -> None:  # sample-3 has moved, sample-4 will hang
        if "sample-4" in line and not line.startswith("rollback"):
            cluster.backend.silent.add("sample-3")

    aborted = cluster.roll("fourth-start-hangs", on_step=silence_host_of_sample_3)
    assert aborted.outcome == "aborted" and "not on fake-host" in aborted.reason
    cluster.backend.silent.clear()  # the host answers again, still on the failed release
    assert cluster.releases() == {
        "sample-1": "v1",
        "sample-2": "v1",
        "sample-3": "fourth-start-hangs",
        "sample-4": "v1",
    }
    with pytest.raises(Drifted, match="unjournaled: sample-3"):
        cluster.pipeline().deploy("v2")

    result = cluster.pipeline().deploy("v2", force=True)

    assert result is not None and result.outcome == "succeeded", result and result.reason
    kinds = [record.begin["kind"] for record in cluster.journal.rollouts()]
    assert kinds[-2:] == ["converge", "deploy"]  # one release first, then the deploy
    assert set(cluster.releases().values()) == {"v2"}
    assert audit(cluster.journal, cluster.backend).clean


def test_without_a_test_command_the_test_stage_shows_as_skipped_not_passed(
    tmp_path: Path,
) -> None:
    cluster = fake_cluster(tmp_path)
    entered: list[str] = []

    @contextlib.contextmanager
    def recording(name: str) -> Iterator[None]:
        entered.append(name)
        yield

    pipeline = DeployPipeline(
        cluster.config, say=cluster.said.append, stage=recording, sandbox=cluster.sandbox
    )
    assert cluster.config.service.test_command is None
    pipeline.deploy("v2")
    assert "test" not in entered and entered[0] == "build v2"
    assert "– test: skipped (no service.test_command configured)" in cluster.said
