"""Confidence sequences cover the truth at every look at once, and narrow as data comes in."""

from __future__ import annotations

import numpy as np
from cautious.judges.sequential import proportion_bound, proportion_bounds, rank_bounds


def test_with_no_trials_a_proportion_could_be_anything() -> None:
    lower, upper = proportion_bounds(0, 0, 0.01)
    assert (float(lower), float(upper)) == (0.0, 1.0)


def test_zero_successes_bound_the_proportion_from_above_only() -> None:
    lower, upper = proportion_bounds(0, 5_000, 0.01)
    assert float(lower) == 0.0
    assert 0 < float(upper) < 0.005


def test_all_successes_bound_the_proportion_from_below_only() -> None:
    lower, upper = proportion_bounds(500, 500, 0.01)
    assert float(upper) == 1.0
    assert 0.8 < float(lower) < 1.0  # the prior expects small ratios: valid, only wider here


def test_bounds_hold_the_estimate_and_narrow_with_more_data() -> None:
    widths = []
    for n in (100, 1_000, 10_000, 100_000):
        lower, upper = proportion_bounds(0.02 * n, n, 0.01)
        assert float(lower) < 0.02 < float(upper)
        widths.append(float(upper - lower))
    assert widths == sorted(widths, reverse=True)


def test_huge_counts_give_a_tight_finite_interval() -> None:
    lower, upper = proportion_bounds(20_000_000, 1_000_000_000, 0.01)
    assert 0.0199 < float(lower) < 0.02 < float(upper) < 0.0201


def test_arrays_are_judged_elementwise_like_scalars() -> None:
    k, n = np.array([0, 3, 50]), np.array([10, 100, 1_000])
    together = proportion_bound(k, n, 0.01, "upper")
    alone = [
        float(proportion_bound(int(a), int(b), 0.01, "upper")) for a, b in zip(k, n, strict=True)
    ]
    assert np.allclose(together, alone)


def test_a_true_proportion_escapes_at_no_look_more_often_than_alpha() -> None:
    rng = np.random.default_rng(7)
    streams, looks, alpha, p = 400, 200, 0.05, 0.03
    successes = np.cumsum(rng.binomial(10, p, size=(streams, looks)), axis=1)
    trials = 10 * np.arange(1, looks + 1)
    lower, upper = proportion_bounds(successes, trials, alpha)
    ever_missed = ((lower > p) | (upper < p)).any(axis=1).mean()
    assert ever_missed <= alpha


def test_rank_bounds_bracket_the_quantiles_expected_rank() -> None:
    lo, hi = rank_bounds(np.array([10_000]), 0.99, 0.01)
    assert int(lo[0]) < 9_900 < int(hi[0]) <= 10_000


def test_too_few_samples_leave_the_upper_tail_unbounded() -> None:
    lo, hi = rank_bounds(np.array([50, 0]), 0.99, 0.01)
    assert hi.tolist() == [51, 1]
    assert lo[1] == 0
