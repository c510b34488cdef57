"""The judges pass a canary only with the power to have seen the declared effect, fail it only
beyond doubt, and otherwise say how much more data they need."""

from __future__ import annotations

import numpy as np
from cautious.judges.judge import CanaryJudgement, judge_canary, judge_errors, judge_latency
from cautious.judges.samples import Samples

RNG = np.random.default_rng(11)
ALPHA, POWER = 0.005, 0.9


def _release(
    requests: int, error_ratio: float, median_ms: float = 50.0, sigma: float = 0.5
) -> Samples:
    errors = int(RNG.binomial(requests, error_ratio))
    latencies = median_ms * np.exp(sigma * RNG.standard_normal(requests - errors))
    return Samples.of(latencies, errors)


def judge_both(canary: Samples, baseline: Samples) -> CanaryJudgement:
    """Errors (+2 points) and p99 (+20 %) at a 1 % false-rollback rate and 90 % power."""
    return judge_canary(
        canary,
        baseline,
        error_effect=0.02,
        latency_floors={0.99: 0.2},
        false_rollback_rate=0.01,
        power=POWER,
    )


def _errors(canary: Samples, baseline: Samples, effect: float = 0.02) -> str:
    judged = judge_errors(canary, baseline, minimal_effect=effect, alpha=ALPHA, power=POWER)
    return judged.verdict


def _latency(canary: Samples, baseline: Samples, floor: float = 0.2) -> str:
    judged = judge_latency(
        canary, baseline, level=0.99, minimal_effect=floor, alpha=ALPHA, power=POWER
    )
    return judged.verdict


def test_an_equal_canary_with_enough_data_passes() -> None:
    canary, baseline = _release(20_000, 0.02), _release(40_000, 0.02)
    judged = judge_both(canary, baseline)
    assert judged.verdict == "pass"
    assert all(item.p_value > 0.01 for item in judged.judgements)


def test_a_clear_error_regression_fails_with_a_small_p_value() -> None:
    judged = judge_errors(
        _release(2_000, 0.08), _release(4_000, 0.01), minimal_effect=0.02, alpha=ALPHA, power=POWER
    )
    assert judged.verdict == "fail"
    assert judged.p_value <= ALPHA
    assert judged.interval[0] > 0
    assert judged.effect is not None and judged.effect > 0.05


def test_too_little_data_is_not_enough_data_and_says_how_much_more() -> None:
    judged = judge_errors(
        _release(60, 0.02), _release(200, 0.02), minimal_effect=0.02, alpha=ALPHA, power=POWER
    )
    assert judged.verdict == "not-enough-data"
    assert judged.more_requests is not None and judged.more_requests > 500
    assert "more canary requests needed" in judged.reason


def test_a_canary_with_no_load_is_not_enough_data_never_a_pass() -> None:
    judged = judge_both(Samples.empty(), _release(5_000, 0.01))
    assert judged.verdict == "not-enough-data"
    assert {item.canary_samples for item in judged.judgements} == {0}


def test_zero_errors_on_both_sides_pass_once_the_effect_is_ruled_out() -> None:
    assert _errors(_release(30, 0.0), _release(60, 0.0)) == "not-enough-data"
    assert _errors(_release(2_000, 0.0), _release(4_000, 0.0)) == "pass"


def test_a_canary_whose_own_errors_are_below_the_effect_cannot_be_that_much_worse() -> None:
    # 0 errors in 300: the canary's ratio is below 2 %, so it is less than 2 points worse than
    # any baseline, even one not measured yet.
    assert _errors(_release(300, 0.0), Samples.empty()) == "pass"


def test_data_on_one_side_only_decides_nothing() -> None:
    assert _errors(_release(5_000, 0.02), Samples.empty()) == "not-enough-data"
    assert _latency(Samples.empty(), _release(5_000, 0.02)) == "not-enough-data"


def test_huge_counts_are_judged_quickly_and_decisively() -> None:
    counts = np.zeros_like(Samples.empty().latency_counts)
    canary = Samples(10**9, 2 * 10**7, counts)
    assert _errors(canary, Samples(3 * 10**9, 6 * 10**7, counts)) == "pass"
    assert _errors(Samples(10**9, 3 * 10**7, counts), Samples(3 * 10**9, 6 * 10**7, counts)) == (
        "fail"
    )


def test_ties_identical_latencies_on_both_sides_pass() -> None:
    same = Samples.of(np.full(20_000, 12.0))
    assert _latency(same, Samples.of(np.full(40_000, 12.0))) == "pass"


def test_a_slower_canary_fails_on_latency() -> None:
    assert _latency(_release(3_000, 0.0, median_ms=75.0), _release(6_000, 0.0)) == "fail"


def test_a_wider_canary_with_the_same_median_fails_on_latency() -> None:
    # Variance only: the median is unchanged, p99 is 50 % higher — a rank test of the median
    # (Mann-Whitney U) does not see it, a test of the 99th percentile does.
    canary = _release(4_000, 0.0, sigma=0.5 + np.log(1.5) / 2.326)
    assert _latency(canary, _release(8_000, 0.0)) == "fail"


def test_a_faster_canary_is_not_a_regression() -> None:
    assert _latency(_release(20_000, 0.0, median_ms=30.0), _release(40_000, 0.0)) == "pass"


def test_the_canary_fails_if_any_metric_fails_and_passes_only_if_all_pass() -> None:
    slow = _release(3_000, 0.0, median_ms=90.0)
    judged = judge_both(slow, _release(6_000, 0.0))
    assert judged.verdict == "fail"
    assert [item.verdict for item in judged.judgements][1] == "fail"
    assert "latency" in judged.summary()
    assert CanaryJudgement(()).verdict == "not-enough-data"  # judging nothing passes nothing
