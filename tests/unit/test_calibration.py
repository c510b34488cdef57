"""The calibration simulates canaries through the runner's own bounds, quickly."""

from __future__ import annotations

import numpy as np
from cautious.config import CanaryConfig
from cautious.judges.calibration import (
    Calibration,
    Scenario,
    default_scenarios,
    render_calibration,
    simulate,
)


def test_the_default_scenarios_cover_the_issues_calibration_set() -> None:
    names = {(item.kind, item.name) for item in default_scenarios((100.0,))}
    assert ("A/A", "A/A 0.5% errors") in names
    assert ("A/B", "p99 +50 % (variance only)") in names
    assert len(names) == 10


def test_an_equal_canary_is_not_rolled_back_and_a_broken_one_is() -> None:
    rng = np.random.default_rng(3)
    settings = CanaryConfig()
    good = simulate(Scenario("A/A", "A/A", 200.0, 0.0, 0.0), settings, 50, rng)
    broken = simulate(Scenario("A/B", "A/B", 200.0, 0.0, 0.2), settings, 50, rng)
    assert good.failed == 0 and good.passed == 50
    assert broken.failed_within_schedule == 50
    assert broken.failed_on["error_ratio"] == 50
    table = render_calibration(Calibration("now", 1.0, {}, (good, broken)))
    assert "A/A" in table and "100.0%" in table
