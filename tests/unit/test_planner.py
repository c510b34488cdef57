"""The planner says how many canary requests each verdict needs, when they arrive, and when the
schedule cannot get there."""

from __future__ import annotations

import numpy as np
from cautious.config import Config
from cautious.judges.planner import (
    CanaryPlanReport,
    metric_alphas,
    plan_canary,
    plan_from_config,
    timeline,
    unequal_load,
)


def _plan(
    rate: float = 200.0, effect: float = 0.02, extension_s: float = 180.0
) -> CanaryPlanReport:
    return plan_canary(
        rate=rate,
        percents=[5, 25, 50, 100],
        bake_s=30.0,
        extension_s=extension_s,
        error_effect=effect,
        latency_floors={0.99: 0.5},
        false_rollback_rate=0.01,
        power=0.9,
        baseline_error_ratio=0.01,
    )


def test_the_timeline_follows_the_shares_of_the_judged_steps() -> None:
    line = timeline(100.0, [5, 25, 100], bake_s=10.0, extension_s=4.0)
    assert line.scheduled_s == 20.0
    assert line.seconds[-1] == 24.0
    assert np.isclose(line.canary[-1], 100 * (10 * 0.05 + 14 * 0.25))
    assert set(line.percent.tolist()) == {5.0, 25.0}


def test_detecting_one_to_three_percent_errors_fits_the_default_schedule_at_200_rps() -> None:
    detect = _plan().needs[0]
    assert detect.goal == "detect" and detect.canary_requests is not None
    assert not detect.extends
    assert "canary requests" in detect.describe()


def test_a_smaller_effect_needs_more_requests() -> None:
    small, large = _plan(effect=0.01).needs[0], _plan(effect=0.05).needs[0]
    assert large.canary_requests is not None
    assert small.canary_requests is None or small.canary_requests > large.canary_requests


def test_it_warns_when_the_schedule_cannot_reach_the_power() -> None:
    plan = _plan(rate=5.0, effect=0.01, extension_s=0.0)
    assert plan.warnings
    assert "not reachable" in plan.warnings[0]
    assert plan.lines()[0].startswith("canary judge at 5 req/s")


def test_the_false_rollback_rate_is_split_between_errors_and_latency() -> None:
    assert metric_alphas(0.01, 2) == (0.005, 0.0025)
    assert metric_alphas(0.01, 0) == (0.01, 0.0)


def test_the_dry_run_plan_reads_the_configuration_and_lists_each_steps_requests() -> None:
    config = Config.model_validate({"load": {"rate": 200}, "canary": {"bake_s": 10}})
    lines = plan_from_config(config).lines()
    assert lines[0].startswith("canary judge at 200 req/s, steps 5 %, 25 %, 50 %, 100 %, 10 s")
    assert lines[1] == (
        "  canary requests per step: 5 % → ~100, 25 % → ~500, 50 % → ~1,000 "
        "(+ up to ~18,000 in the extension)"
    )
    assert len(lines) == 2 + 4  # errors and p99, each to detect and to pass


def test_it_cautions_when_a_canary_instance_carries_more_load_than_a_baseline() -> None:
    assert unequal_load([5, 25, 100], canaries=1, baselines=3) == ()
    [caution] = unequal_load([5, 25, 50, 100], canaries=1, baselines=3)
    assert caution.startswith("at 50 % each canary instance serves 3.0× the requests")
    config = Config.model_validate({"rollout": {"canary_steps": [10, 50, 100]}})
    assert any("heavier load" in warning for warning in plan_from_config(config).warnings)
