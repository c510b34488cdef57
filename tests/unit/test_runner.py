"""The runner on the fake backend: every strategy, rollbacks in reverse, undo, recover, gates."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from cautious.rollout.runner import recover

from tests.unit.fakes import FakeCluster, fake_cluster

SLOTS = ["sample-1", "sample-2", "sample-3", "sample-4"]


@pytest.fixture
def cluster(tmp_path: Path) -> FakeCluster:
    return fake_cluster(tmp_path)


def everyone_on(cluster: FakeCluster, release: str, slots: list[str] = SLOTS) -> bool:
    instances = cluster.backend.instances()
    return [item.name for item in instances] == slots and all(
        item.release == release and item.state == "running" for item in instances
    )


def in_rotation(cluster: FakeCluster) -> set[str]:
    return {name for name, stat in cluster.lb.stats().items() if stat.in_rotation}


# -- every strategy reaches the new release ---------------------------------------------------


def test_a_rolling_rollout_moves_every_instance_to_the_new_release(cluster: FakeCluster) -> None:
    result = cluster.roll("v2")
    assert result.outcome == "succeeded"
    assert everyone_on(cluster, "v2")
    assert in_rotation(cluster) == set(SLOTS)


def test_a_rolling_rollout_never_leaves_a_request_without_a_server(cluster: FakeCluster) -> None:
    cluster.roll("v2")
    assert cluster.lb.answers and all(answer.status == 200 for answer in cluster.lb.answers)


def test_blue_green_switches_to_a_green_set_and_retires_blue(cluster: FakeCluster) -> None:
    result = cluster.with_rollout().roll("v2", "blue-green")
    green = ["sample-5", "sample-6", "sample-7", "sample-8"]
    assert result.outcome == "succeeded"
    assert everyone_on(cluster, "v2", green)
    assert in_rotation(cluster) == set(green)


def test_a_healthy_canary_is_promoted_and_then_retired(cluster: FakeCluster) -> None:
    result = cluster.roll("v2", "canary")
    assert result.outcome == "succeeded"
    assert everyone_on(cluster, "v2")
    assert {cluster.lb.server(slot).weight for slot in SLOTS} == {1}


def test_stop_and_go_replaces_everything_at_once_and_measures_the_gap(
    cluster: FakeCluster,
) -> None:
    result = cluster.roll("v2", "stop-and-go")
    assert result.outcome == "succeeded"
    assert everyone_on(cluster, "v2")
    assert result.longest_without_capacity_s > 0


# -- failed gates roll back, newest first ----------------------------------------------------


def journal_steps(cluster: FakeCluster, rollout_id: str) -> list[dict[str, Any]]:
    [record] = [item for item in cluster.journal.rollouts() if item.id == rollout_id]
    return record.steps


def rollback_steps(cluster: FakeCluster, rollout_id: str) -> list[str]:
    return [
        step["name"] for step in journal_steps(cluster, rollout_id) if step["phase"] == "rollback"
    ]


def test_a_release_that_crashes_on_start_is_rolled_back(cluster: FakeCluster) -> None:
    result = cluster.roll("crash-on-start")
    assert result.outcome == "rolled-back"
    assert "exited" in result.reason and "fatal error" in result.reason
    assert everyone_on(cluster, "v1")
    assert in_rotation(cluster) == set(SLOTS)


def test_a_release_that_never_becomes_ready_is_rolled_back(cluster: FakeCluster) -> None:
    result = cluster.roll("never-ready")
    assert result.outcome == "rolled-back"
    assert "did not answer 200 within 0.3 s" in result.reason
    assert everyone_on(cluster, "v1")


def test_a_failure_in_a_later_batch_undoes_every_batch_in_reverse(cluster: FakeCluster) -> None:
    result = cluster.roll("fourth-start-hangs")
    assert result.outcome == "rolled-back"
    assert rollback_steps(cluster, result.id) == [
        "start sample-4 on v1 again",
        "retire sample-3 (fourth-start-hangs)",
        "start sample-3 on v1 again",
        "retire sample-2 (fourth-start-hangs)",
        "start sample-2 on v1 again",
        "retire sample-1 (fourth-start-hangs)",
        "start sample-1 on v1 again",
    ]
    assert everyone_on(cluster, "v1")


def test_a_new_instance_that_dies_during_its_bake_is_rolled_back(tmp_path: Path) -> None:
    cluster = fake_cluster(tmp_path, bake_s=0.1)
    result = cluster.roll("dies-in-bake")
    assert result.outcome == "rolled-back"
    assert result.reason == "bake: sample-1 is exited (exit code 1)"
    assert everyone_on(cluster, "v1")


def test_a_blue_green_rollout_that_fails_keeps_blue_serving(cluster: FakeCluster) -> None:
    result = cluster.roll("never-ready", "blue-green")
    assert result.outcome == "rolled-back"
    assert everyone_on(cluster, "v1")
    assert in_rotation(cluster) == set(SLOTS)


def test_ctrl_c_mid_rollout_rolls_back(cluster: FakeCluster) -> None:
    def interrupt_at_step_4(line: str) -> None:
        if line.startswith("step 4/"):
            raise KeyboardInterrupt

    result = cluster.roll("v2", on_step=interrupt_at_step_4)
    assert (result.outcome, result.reason) == ("rolled-back", "interrupted (Ctrl-C)")
    assert everyone_on(cluster, "v1")


def test_the_journal_s_end_names_every_instance_s_release(cluster: FakeCluster) -> None:
    result = cluster.roll("crash-on-start")
    [record] = cluster.journal.rollouts()
    assert record.end is not None and record.end["outcome"] == result.outcome
    assert [(item["name"], item["release"]) for item in record.end["instances"]] == [
        (slot, "v1") for slot in SLOTS
    ]


# -- undo is worked out from what the runner saw, not from the plan ----------------------------


def test_undo_restarts_each_slot_on_the_release_it_ran_not_the_plan_s_from_release(
    tmp_path: Path,
) -> None:
    cluster = fake_cluster(tmp_path, up=None)
    cluster.sandbox.up(3, "v1")
    cluster.sandbox.up(4, "v1")  # fills sample-4 …
    cluster.runner().retire_one("sample-4")
    cluster.runner().start_one("sample-4", cluster.release("v0"), True)  # … then moves it to v0
    result = cluster.roll("fourth-start-hangs")
    assert result.outcome == "rolled-back"
    assert cluster.releases() == {
        "sample-1": "v1",
        "sample-2": "v1",
        "sample-3": "v1",
        "sample-4": "v0",
    }


def test_a_rolled_back_canary_restores_the_weights_it_found(cluster: FakeCluster) -> None:
    cluster.lb.set_weight("sample-2", 7)
    result = cluster.roll("errors-50pct", "canary")
    assert result.outcome == "rolled-back"
    assert [cluster.lb.server(slot).weight for slot in SLOTS] == [1, 7, 1, 1]
    assert everyone_on(cluster, "v1")


# -- the canary gate asks the judge (samples from the LB's counters: no request log here) -----


def test_the_canary_gate_rolls_back_a_canary_that_is_worse_beyond_doubt(
    cluster: FakeCluster,
) -> None:
    result = cluster.roll("errors-50pct", "canary")
    assert result.outcome == "rolled-back"
    # Every other request fails; a window that starts between two of them counts one more or less.
    counted = re.match(r"canary: error ratio: canary [\d.]+% \((\d+)/(\d+)\)", result.reason)
    assert counted, result.reason
    errors, requests = int(counted[1]), int(counted[2])
    assert requests > 0 and abs(2 * errors - requests) <= 2, result.reason
    assert "worse beyond doubt" in result.reason
    assert everyone_on(cluster, "v1")
    [failed] = [step for step in journal_steps(cluster, result.id) if step.get("judgement")]
    assert failed["verdict"] == "fail"
    assert failed["judgement"]["metrics"][0]["p_value"] <= 0.01


def test_the_canary_gate_passes_a_canary_as_good_as_its_baseline(tmp_path: Path) -> None:
    # Room to extend: a busy machine simulates fewer requests per second of wall time.
    cluster = fake_cluster(tmp_path, up="errors-1pct", canary={"max_extension_s": 5.0})
    result = cluster.roll("also-errors-1pct", "canary")
    assert result.outcome == "succeeded", result.reason
    [judged] = [step for step in journal_steps(cluster, result.id) if step.get("judgement")]
    verdict = judged["judgement"]
    assert verdict["verdict"] == "pass"
    [errors] = verdict["metrics"]  # no request log: latency is not judged
    assert errors["canary"] == pytest.approx(errors["baseline"], abs=0.01)
    assert errors["upper_at_power"] < errors["minimal_effect"]
    assert judged["samples_from"] == "lb counters"


def test_a_canary_without_traffic_ends_not_enough_data_never_a_pass(tmp_path: Path) -> None:
    cluster = fake_cluster(tmp_path, traffic_per_s=0)
    result = cluster.roll("v2", "canary")
    assert result.outcome == "rolled-back"
    assert result.reason.startswith("canary: not enough data to promote after")
    assert everyone_on(cluster, "v1")
    [refused] = [step for step in journal_steps(cluster, result.id) if step.get("judgement")]
    assert refused["verdict"] == "not-enough-data"


def test_the_hard_ceiling_fails_a_canary_even_before_the_judge_is_sure(tmp_path: Path) -> None:
    cluster = fake_cluster(tmp_path, canary_max_error_ratio=0.005, up="errors-1pct")
    result = cluster.roll("also-errors-1pct", "canary")
    assert result.outcome == "rolled-back"
    assert "above the hard ceiling of 0.5%" in result.reason


def test_a_bake_with_an_error_bound_rolls_back_a_release_above_it(tmp_path: Path) -> None:
    cluster = fake_cluster(tmp_path, bake_max_error_ratio=0.1)
    result = cluster.roll("errors-50pct")
    assert result.outcome == "rolled-back"
    assert re.match(r"bake: sample-1 answered (49\.\d|50\.\d)% 5xx .*above 10\.0%", result.reason)


# -- recover finishes the job of an orchestrator that died ------------------------------------


class OrchestratorDied(BaseException):
    """Stands in for SIGKILL: nothing of the runner's own handling runs."""


def die_at(step: int) -> object:
    def on_step(line: str) -> None:
        if line.startswith(f"step {step}/"):
            raise OrchestratorDied

    return on_step


@pytest.mark.parametrize(("strategy", "step"), [("rolling", 5), ("blue-green", 3), ("canary", 4)])
def test_recover_after_a_crash_mid_rollout_brings_back_one_release(
    cluster: FakeCluster, strategy: str, step: int
) -> None:
    with pytest.raises(OrchestratorDied):
        cluster.roll("v2", strategy, on_step=die_at(step))  # type: ignore[arg-type]
    assert len({item.release for item in cluster.backend.instances()}) == 2
    recovered = recover(cluster.sandbox, cluster.journal, say=cluster.said.append)
    assert len(recovered) == 1
    assert everyone_on(cluster, "v1")
    assert in_rotation(cluster) == set(SLOTS)
    assert {cluster.lb.server(slot).weight for slot in SLOTS} == {1}
    [record] = cluster.journal.rollouts()
    assert record.outcome == "aborted" and "recovered to v1" in record.end["reason"]  # type: ignore[index]


def test_recover_leaves_a_cluster_alone_when_every_rollout_ended(cluster: FakeCluster) -> None:
    cluster.roll("v2")
    assert recover(cluster.sandbox, cluster.journal, say=cluster.said.append) == []
    assert everyone_on(cluster, "v2")


# -- read-only mode ----------------------------------------------------------------------------


def test_read_only_stop_and_go_keeps_the_old_release_serving_while_writes_are_refused(
    tmp_path: Path,
) -> None:
    cluster = fake_cluster(tmp_path, read_only=True)
    seen: list[tuple[str, bool]] = []
    original = cluster.lb.set_read_only

    def spy(on: bool) -> None:
        seen.append((", ".join(sorted(in_rotation(cluster))), on))
        original(on)

    cluster.lb.set_read_only = spy  # type: ignore[method-assign]
    result = cluster.roll("v2", "stop-and-go")
    fresh = ["sample-5", "sample-6", "sample-7", "sample-8"]
    assert result.outcome == "succeeded"
    assert everyone_on(cluster, "v2", fresh)
    assert seen == [(", ".join(SLOTS), True), (", ".join(fresh), False)]
    assert result.longest_without_capacity_s == 0  # reads never lost their servers
    assert not cluster.lb.read_only


def test_a_failed_read_only_rollout_lets_writes_through_again(tmp_path: Path) -> None:
    cluster = fake_cluster(tmp_path, read_only=True)
    result = cluster.roll("never-ready", "stop-and-go")
    assert result.outcome == "rolled-back"
    assert rollback_steps(cluster, result.id)[-1] == "read-only mode off"
    assert not cluster.lb.read_only
    assert everyone_on(cluster, "v1")


def test_a_shadowed_canary_without_load_to_mirror_is_rolled_back_for_lack_of_data(
    tmp_path: Path,
) -> None:
    cluster = fake_cluster(tmp_path)
    canary = cluster.config.canary.model_copy(update={"shadow": True, "shadow_s": 0.05})
    shadowed = cluster.config.model_copy(update={"canary": canary})
    cluster = cluster.__class__(
        shadowed, cluster.backend, cluster.sandbox, cluster.journal, cluster.said
    )
    result = cluster.roll("v2", "canary")
    assert result.outcome == "rolled-back"
    assert result.reason == "shadow: no load is running to mirror"
    assert everyone_on(cluster, "v1")


# -- a host that stops answering mid-rollout (sshd killed) ----------------------------------------


def silence_on_step(cluster: FakeCluster, slot: str) -> Any:
    """An on_step callback: the host of ``slot`` stops answering when a step names it."""

    def on_step(line: str) -> None:
        if slot in line and not line.startswith("rollback"):
            cluster.backend.silent.add(slot)

    return on_step


def test_a_host_that_stops_answering_is_passed_over_and_every_other_goes_back(
    cluster: FakeCluster,
) -> None:
    result = cluster.roll("v2", on_step=silence_on_step(cluster, "sample-3"))
    assert result.outcome == "aborted"
    assert result.reason.startswith("host fake-host does not answer SSH")
    assert result.reason.endswith(
        "rolled back on every host that answers, not on fake-host"
        " (unreachable: see `cautious status`)"
    )
    assert {item.name: (item.release, item.state) for item in cluster.backend.instances()} == {
        "sample-1": ("v1", "running"),
        "sample-2": ("v1", "running"),
        "sample-3": ("", "unreachable"),
        "sample-4": ("v1", "running"),
    }
    [record] = cluster.journal.rollouts()
    assert {item["name"]: item["state"] for item in record.end["instances"]}["sample-3"] == (
        "unreachable"
    )
    assert record.outcome == "aborted"
