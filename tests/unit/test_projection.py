"""The downtime projection, checked against calculations done by hand."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from cautious.measure.projection import (
    MEASURED_NOTE,
    DeployFigures,
    figures_from_journal,
    project,
)
from cautious.rollout.journal import Journal

# Four measured deploys at 100 req/s (2,000 requests over 20 s each).
FIGURES = [
    DeployFigures("a", error_s=1, failed=50, requests=2_000, window_s=20, rollout_s=10),
    DeployFigures("b", error_s=0, failed=0, requests=2_000, window_s=20, rollout_s=12),
    DeployFigures("c", error_s=2, failed=150, requests=2_000, window_s=20, rollout_s=14),
    DeployFigures("d", error_s=1, failed=100, requests=2_000, window_s=20, rollout_s=12),
]
T_975_3 = 3.182446  # Student's t, 97.5th percentile, 3 degrees of freedom (from a table)


def test_a_month_of_ten_deploys_a_day_costs_ten_times_the_mean_per_day() -> None:
    month = project(FIGURES, 10, slo=0.999).period("month")
    deploys = 10 * 365 / 12  # 304.17 deploys
    assert month.deploys == pytest.approx(deploys)
    # error seconds 1, 0, 2, 1: mean 1, sample standard deviation sqrt(2/3)
    assert month.downtime_s.expected == pytest.approx(304.1667, rel=1e-4)
    half = T_975_3 * math.sqrt(2 / 3) * math.sqrt(deploys**2 / 4 + deploys)
    assert half == pytest.approx(397.77, rel=1e-3)
    assert month.downtime_s.low == 0.0  # clipped: downtime is never negative
    assert month.downtime_s.high == pytest.approx(304.1667 + 397.77, rel=1e-3)
    # failed requests 50, 0, 150, 100: mean 75
    assert month.failed_requests.expected == pytest.approx(75 * deploys)
    # rollout time 10, 12, 14, 12: mean 12 s
    assert month.rollout_s.expected == pytest.approx(12 * deploys)


def test_the_error_budget_is_the_lost_traffic_over_the_budget_of_the_period() -> None:
    year = project(FIGURES, 10, slo=0.999).period("year")
    # lost seconds of traffic per deploy: failed / 100 req/s = 0.5, 0, 1.5, 1.0 (mean 0.75)
    # a year's budget at 99.9 %: 0.001 × 365 × 86,400 = 31,536 s
    assert year.budget_used is not None
    assert year.budget_used.expected == pytest.approx(3_650 * 0.75 / 31_536)  # 8.7 %
    sd = math.sqrt((0.25**2 + 0.75**2 + 0.75**2 + 0.25**2) / 3)
    half = T_975_3 * sd * math.sqrt(3_650**2 / 4 + 3_650)
    assert year.budget_used.high == pytest.approx((3_650 * 0.75 + half) / 31_536, rel=1e-5)


def test_one_measured_deploy_gives_an_expectation_without_an_interval() -> None:
    year = project(FIGURES[:1], 2, slo=0.99).period("year")
    assert year.downtime_s.expected == pytest.approx(730)
    assert year.downtime_s.low is None and year.downtime_s.high is None


def test_a_perfect_slo_has_no_budget_to_use() -> None:
    assert project(FIGURES, 1, slo=1.0).period("month").budget_used is None


def test_nothing_to_project_from_is_an_error() -> None:
    with pytest.raises(ValueError, match="no measured deploys"):
        project([], 10, slo=0.999)
    with pytest.raises(ValueError, match="positive"):
        project(FIGURES, 0, slo=0.999)


def test_figures_round_trip_through_their_journaled_form() -> None:
    record = {
        "rollout_id": "x",
        "error_s": 3,
        "failed": 4,
        "requests": 5,
        "window_s": 6.5,
        "rollout_s": 7.0,
    }
    figures = DeployFigures.from_dict(record)
    assert figures == DeployFigures("x", 3, 4, 5, 6.5, 7.0)
    assert figures.lost_s == pytest.approx(4 * 6.5 / 5)


def test_the_projection_of_a_journal_matches_the_hand_calculation(tmp_path: Path) -> None:
    journal = Journal(tmp_path, "unit")
    for figures in FIGURES:
        journal.note(MEASURED_NOTE, **figures.to_dict())
    journal.note("leg-end", leg="expand")  # other records are not measurements
    read = figures_from_journal(journal)
    assert read == FIGURES
    year = project(read, 10, slo=0.999).period("year")
    # by hand: 3,650 deploys × mean 1 error second; ± 3.182 × 0.8165 × √(3,650²/4 + 3,650)
    assert year.downtime_s.expected == pytest.approx(3_650)
    assert year.downtime_s.high == pytest.approx(3_650 + 4_744.8, rel=1e-4)
    assert year.failed_requests.expected == pytest.approx(273_750)  # 3,650 × 75
