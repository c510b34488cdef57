"""The one verdict of a run: claims, the rollout's outcome and its gates, or the experiments."""

from __future__ import annotations

from dataclasses import dataclass

from cautious.measure.claims import ClaimResult
from cautious.rollout.journal import Outcome
from cautious.rollout.records import RolloutSummary, StepRecord
from cautious.verdict import Verdict, judge_run, worst

PASS = ClaimResult("success_ratio", 0.999, 1.0, "pass", "")
FAIL = ClaimResult("p99_ms", 300, 450.0, "fail", "")
LACKING = ClaimResult("longest_error_window_s", 1, None, "not-enough-data", "")


def rollout(outcome: Outcome, gate: Verdict | None = None) -> RolloutSummary:
    steps = ()
    if gate is not None:
        steps = (StepRecord("bake", "forward", 1.0, 2.0, "failed", kind="bake", verdict=gate),)
    return RolloutSummary("id", "canary", "v1", "v2", outcome, "the gate said no", 1.0, 3.0, steps)


@dataclass(frozen=True)
class Experiment:
    name: str
    held: bool
    reasons: tuple[str, ...] = ()


def test_the_worst_verdict_wins_and_nothing_checked_proves_nothing() -> None:
    assert worst(["pass", "not-enough-data", "fail"]) == "fail"
    assert worst(["pass", "not-enough-data"]) == "not-enough-data"
    assert worst([]) == "not-enough-data"
    assert worst(["pass"]) == "pass"


def test_the_claims_decide_a_run_without_a_rollout() -> None:
    assert judge_run([PASS]).reason == "the one claim holds"
    assert judge_run([PASS, FAIL]).verdict == "fail"
    assert judge_run([PASS, FAIL]).reason == "claim not holding: p99 latency"
    assert judge_run([PASS, LACKING]).reason == "not enough data to judge: longest error window"
    assert judge_run([]).reason == "no claim was evaluated, so nothing was proven"


def test_a_rollout_that_was_rolled_back_fails_even_when_the_claims_hold() -> None:
    judgement = judge_run([PASS], rollout("rolled-back"))
    assert judgement.verdict == "fail"
    assert judgement.reason == "the rollout was rolled back: the gate said no; the one claim holds"


def test_a_gate_without_enough_data_makes_the_run_not_enough_data_rather_than_fail() -> None:
    assert judge_run([PASS], rollout("rolled-back", "not-enough-data")).verdict == (
        "not-enough-data"
    )
    assert judge_run([FAIL], rollout("rolled-back", "not-enough-data")).verdict == "fail"
    assert judge_run([PASS], rollout("rolled-back", "fail")).verdict == "fail"


def test_the_experiments_decide_a_game_day_even_when_a_rollback_was_expected() -> None:
    held = Experiment("crash-loop-rolls-back", held=True)
    assert judge_run([FAIL], rollout("rolled-back"), [held]).verdict == "pass"
    failed = Experiment("kill-mid-rollout", held=False, reasons=("deviated",))
    assert judge_run([], None, [held, failed]).reason == (
        "1 of 2 experiment(s) did not hold: kill-mid-rollout"
    )
    assert judge_run([], None, [failed]).reason == "deviated"
    assert judge_run([], None, []).verdict == "fail"
