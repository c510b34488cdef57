"""Start-up tail warnings and rollout-time estimates, from a journal written for the test."""

from __future__ import annotations

from pathlib import Path

import pytest
from cautious.config import RolloutConfig
from cautious.rollout.journal import Journal, RolloutRecord
from cautious.rollout.startup import estimate_rollout, startup_samples, tail_warnings
from cautious.rollout.strategies import make_plan

SLOTS = ("s-1", "s-2", "s-3")


def _journal_rolling(journal: Journal, release: str, ready: list[float], t0: float) -> None:
    """A succeeded rolling rollout of three instances whose steps took known times:
    retire 1 s, start 0.5 s + time to ready, bake 2 s, and 1 s of the rollout's own overhead."""
    rollout_id = journal.begin(
        strategy="rolling", **{"from": {"label": "v1"}, "to": {"label": release}}
    )
    t = t0 + 0.5
    for slot, seconds in zip(SLOTS, ready, strict=True):
        journal.step(
            rollout_id, kind="retire", phase="forward", started=t, ended=t + 1, outcome="ok"
        )
        t += 1
        journal.step(
            rollout_id,
            kind="start",
            phase="forward",
            started=t,
            ended=t + 0.5 + seconds,
            outcome="ok",
            ready_s=[{"instance": slot, "release": release, "seconds": seconds}],
        )
        t += 0.5 + seconds
        journal.step(rollout_id, kind="bake", phase="forward", started=t, ended=t + 2, outcome="ok")
        t += 2
    journal.end(rollout_id, "succeeded")
    _retime(journal, rollout_id, t0, t + 0.5)


def _retime(journal: Journal, rollout_id: str, begin: float, end: float) -> None:
    """Give the begin and end records the times of the story (the journal stamps 'now')."""
    import json

    lines = journal.path.read_text().splitlines()
    fixed = []
    for line in lines:
        entry = json.loads(line)
        if entry["id"] == rollout_id and entry["type"] in {"begin", "end"}:
            entry["time"] = begin if entry["type"] == "begin" else end
        fixed.append(json.dumps(entry))
    journal.path.write_text("\n".join(fixed) + "\n")


@pytest.fixture
def history(tmp_path: Path) -> list[RolloutRecord]:
    journal = Journal(tmp_path, "unit")
    _journal_rolling(journal, "v2", [1.0, 1.0, 1.0], t0=1_000)
    _journal_rolling(journal, "v2", [1.0, 1.0, 1.0], t0=2_000)
    _journal_rolling(journal, "slow", [4.0, 6.0, 20.0], t0=3_000)
    return journal.rollouts()


def test_start_up_samples_are_grouped_per_release(history: list[RolloutRecord]) -> None:
    assert startup_samples(history) == {"v2": [1.0] * 6, "slow": [4.0, 6.0, 20.0]}


def test_a_deadline_inside_the_observed_tail_warns(history: list[RolloutRecord]) -> None:
    (warning,) = tail_warnings(startup_samples(history), 15)
    assert warning.release == "slow"
    assert warning.observed_beyond == 1
    assert warning.max_s == 20.0
    assert warning.rollout_failure_chance(3) > 0.5
    assert "ready_timeout_s 15 s sits inside the start-up tail" in warning.message(3)


def test_a_deadline_beyond_every_start_up_but_inside_the_fitted_tail_still_warns() -> None:
    # lognormal fit of 4, 6, 20 s puts about 5 % of start-ups past 30 s
    (warning,) = tail_warnings({"slow": [4.0, 6.0, 20.0]}, 30)
    assert warning.observed_beyond == 0
    assert 0.01 < warning.estimated_share < 0.2


def test_a_deadline_far_beyond_the_tail_is_quiet(history: list[RolloutRecord]) -> None:
    assert tail_warnings(startup_samples(history), 600) == []
    assert tail_warnings({"v2": [1.0, 1.0]}, 1.5) == []  # no spread, all below


def test_the_estimate_adds_up_the_plan_from_the_journal(history: list[RolloutRecord]) -> None:
    plan = make_plan("rolling", list(SLOTS), [], RolloutConfig(bake_s=2))
    estimate = estimate_rollout(plan, "v2", history)
    assert estimate is not None
    # 3 × (retire 1 + start 0.5 + ready 1 + bake 2) + overhead 1 = 14.5 s, with no spread
    assert estimate.p50_s == pytest.approx(14.5)
    assert estimate.p99_s == pytest.approx(14.5)
    assert estimate.assumed == ()


def test_a_slow_release_is_estimated_from_its_own_start_ups(
    history: list[RolloutRecord],
) -> None:
    plan = make_plan("rolling", list(SLOTS), [], RolloutConfig(bake_s=2))
    estimate = estimate_rollout(plan, "slow", history)
    assert estimate is not None
    # fixed 11.5 s (3 × (1 + 0.5 + 2) + 1) plus three draws from 4, 6, 20 s: two rollouts in
    # three draw a 20 s start at least once (1 - (2/3)³ = 70 %), one in 27 draws it three times
    assert 11.5 + 28 <= estimate.p50_s <= 11.5 + 32
    assert estimate.p99_s == pytest.approx(11.5 + 60)
    assert "p50" in estimate.line() and "p99" in estimate.line()


def test_no_journaled_start_up_means_no_estimate(tmp_path: Path) -> None:
    plan = make_plan("rolling", list(SLOTS), [], RolloutConfig())
    assert estimate_rollout(plan, "v2", Journal(tmp_path, "empty").rollouts()) is None


def test_steps_without_history_use_their_declared_time(history: list[RolloutRecord]) -> None:
    plan = make_plan("stop-and-go", list(SLOTS), [], RolloutConfig(bake_s=3))
    estimate = estimate_rollout(plan, "v2", history)
    assert estimate is not None
    assert estimate.assumed == ("bake", "retire")
    assert estimate.rollouts == 0
    assert estimate.p50_s == pytest.approx(1.0 + 3)  # the slowest of three 1 s starts + bake
