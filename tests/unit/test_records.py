"""A rollout's records: typed from the runner on, the same JSON wherever they are written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cautious.rollout.records import (
    InstanceRecord,
    RolloutSummary,
    StepRecord,
    TimelineEvent,
)

from tests.unit.fakes import FakeCluster, fake_cluster


@pytest.fixture
def cluster(tmp_path: Path) -> FakeCluster:
    return fake_cluster(tmp_path)


def test_a_rollout_survives_json_and_back_as_the_chaos_worker_writes_it(
    cluster: FakeCluster,
) -> None:
    summary = cluster.roll("v2").summary()
    text = json.dumps(summary.to_dict(), sort_keys=True)
    assert RolloutSummary.from_dict(json.loads(text)) == summary


def test_the_runner_makes_typed_records(cluster: FakeCluster) -> None:
    result = cluster.roll("v2")
    assert result.steps and all(isinstance(step, StepRecord) for step in result.steps)
    assert all(isinstance(event, TimelineEvent) for event in result.timeline)
    v2 = cluster.release("v2").digest
    assert result.instances == tuple(
        InstanceRecord(f"sample-{n}", "v2", "running", digest=v2) for n in range(1, 5)
    )
    summary = result.summary()
    assert (summary.from_release, summary.to_release, summary.outcome) == ("v1", "v2", "succeeded")


def test_the_journal_holds_a_step_as_its_plain_fields_and_what_it_measured(
    cluster: FakeCluster,
) -> None:
    result = cluster.roll("v2")
    journaled = cluster.journal.rollouts()[-1].steps
    assert len(journaled) == len(result.steps)
    for entry, step in zip(journaled, result.steps, strict=True):
        assert entry.items() >= step.to_dict().items()  # plus the journal's own id and time
    start = next(step for step in journaled if step.get("kind") == "start")
    assert set(start) >= {"name", "phase", "started", "ended", "outcome", "instances", "ready_s"}
    assert "verdict" not in start and "detail" not in start


def test_a_failed_gate_is_recorded_with_its_verdict_and_stops_the_rollout(
    cluster: FakeCluster,
) -> None:
    summary = cluster.roll("never-ready").summary()
    gate = summary.stopping_gate()
    assert summary.outcome == "rolled-back"
    assert gate is not None and (gate.outcome, gate.verdict) == ("failed", "fail")
    assert "readiness" in gate.detail
    assert any(step.phase == "rollback" for step in summary.steps)


def test_a_step_keeps_what_it_measured_through_json() -> None:
    step = StepRecord(
        "bake sample-1",
        "forward",
        1.0,
        2.0,
        "failed",
        kind="bake",
        instances=("sample-1",),
        detail="canary: not enough samples",
        verdict="not-enough-data",
        facts={"canary_requests": 3},
    )
    assert step.to_dict()["canary_requests"] == 3
    assert StepRecord.from_dict(json.loads(json.dumps(step.to_dict()))) == step
