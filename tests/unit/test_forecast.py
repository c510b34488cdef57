"""What the command line prints from the journal: the projection's lines."""

from __future__ import annotations

from cautious.cli.forecast import projection_lines
from cautious.measure.projection import DeployFigures, project

ONE = DeployFigures("a", error_s=1, failed=50, requests=2_000, window_s=20, rollout_s=10)
TWO = DeployFigures("b", error_s=3, failed=150, requests=2_000, window_s=20, rollout_s=14)


def test_the_projection_reads_per_month_and_per_year_with_intervals() -> None:
    lines = projection_lines(project([ONE, TWO], 10, slo=0.999))
    assert lines[0] == (
        "10 deploys a day, projected from 2 measured deploys (95% prediction intervals)"
    )
    assert lines[1] == "per month (304 deploys):"
    assert lines[2].startswith("  downtime (seconds with errors) 608.3 s (0.0 s to ")
    # lost traffic 0.5 s and 1.5 s a deploy; 304 × 1 s of a month's 2,628 s budget at 99.9 %
    assert "  error budget used 11.6 % (0.0 % to 85.3 %)" in lines
    assert "  failed requests at the measured rate 30,417 (0 to 224,291)" in lines
    assert "per year (3,650 deploys):" in lines


def test_one_measured_deploy_is_projected_without_an_interval() -> None:
    lines = projection_lines(project([ONE], 1, slo=None))
    assert lines[2] == "  downtime (seconds with errors) 30.4 s (one measured deploy: no interval)"
    assert not any("error budget" in line for line in lines)
