"""Bounds of the effect of a canary, shared by the judges, the planner and the calibration.

Each combines two one-release confidence sequences (see :mod:`cautious.judges.sequential`),
giving each α / 2, so the effect's bound holds at every look with probability 1 − α. They work
elementwise on arrays: the runner passes one canary, the calibration a thousand.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt

from cautious.judges.samples import quantile_bounds
from cautious.judges.sequential import ArrayLike, FloatArray, proportion_bound

__all__ = ["error_bound", "latency_bounds"]


def error_bound(
    canary_errors: ArrayLike,
    canary_requests: ArrayLike,
    baseline_errors: ArrayLike,
    baseline_requests: ArrayLike,
    alpha: float,
    side: Literal["lower", "upper"],
) -> FloatArray:
    """A bound of the canary's minus the baseline's error ratio, elementwise.

    Valid at every look at once with probability 1 − α: each release's confidence sequence
    gets α / 2 (the canary's lower bound minus the baseline's upper one, or the reverse).
    """
    other: Literal["lower", "upper"] = "upper" if side == "lower" else "lower"
    canary = proportion_bound(canary_errors, canary_requests, alpha / 2, side)
    baseline = proportion_bound(baseline_errors, baseline_requests, alpha / 2, other)
    return canary - baseline


def latency_bounds(
    canary: npt.NDArray[np.int64],
    baseline: npt.NDArray[np.int64],
    level: float,
    alpha: float,
    first_bin: int = 0,
) -> tuple[FloatArray, FloatArray]:
    """Bounds of canary / baseline − 1 for the ``level`` quantile, from cumulative histograms.

    −1 / inf where a side has too few samples to bound it.
    """
    c = quantile_bounds(canary, level, alpha / 2, first_bin)
    b = quantile_bounds(baseline, level, alpha / 2, first_bin)
    with np.errstate(divide="ignore", invalid="ignore"):
        low = np.where(np.isfinite(b.upper), c.lower / b.upper - 1, -1.0)
        high = np.where(b.lower > 0, c.upper / b.lower - 1, np.inf)
    return np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
