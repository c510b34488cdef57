"""The canary judges: pure functions from canary and baseline samples to a verdict with evidence.

Each metric gets one of three verdicts:

- ``fail``: the canary is worse than the baseline, beyond doubt — the anytime-valid confidence
  interval of the difference lies entirely on the worse side of zero;
- ``pass``: a regression as large as the declared minimal effect is ruled out — the interval
  lies entirely below the effect. Passing therefore needs the power to have seen the effect;
- ``not-enough-data``: neither yet, with an estimate of how many more canary requests would
  settle it.

The intervals are confidence *sequences* (see :mod:`cautious.judges.sequential`): the chance
that an A/A canary ever fails, over every poll of every step, is at most the declared
false-rollback rate. That rate is split evenly between the error metric and the latency
metrics, and within a metric between canary and baseline (a union bound).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.optimize import bisect
from scipy.stats import lognorm

from cautious.judges.bounds import error_bound, latency_bounds
from cautious.judges.planner import (
    PLANNING_LATENCY_SIGMA,
    error_reached,
    latency_reached,
    metric_alphas,
)
from cautious.judges.samples import BIN_EDGES_MS, Samples, quantile_estimate
from cautious.judges.sequential import FloatArray
from cautious.verdict import Verdict, worst

__all__ = [
    "CanaryJudgement",
    "MetricJudgement",
    "anytime_p_value",
    "error_interval",
    "json_safe",
    "judge_canary",
    "judge_errors",
    "judge_latency",
    "latency_interval",
]

_SMALLEST_P = 1e-12
_P_TOLERANCE = 0.05  # of log α: the p-value to ±5 %, in a handful of evaluations
# Below this many baseline answers the measured tail is too coarse to plan with; the planner's
# lognormal assumption stands in.
_EMPIRICAL_TAIL_SAMPLES = 2_000


@dataclass(frozen=True)
class MetricJudgement:
    """One metric's verdict and the evidence behind it (all values plain, for JSON).

    ``effect`` is canary − baseline for error ratios and canary / baseline − 1 for latency
    quantiles; ``interval`` bounds it at every look with probability 1 − ``alpha`` (``fail``
    when its lower end is above zero); ``upper_at_power`` is the upper bound at level
    ``power`` (``pass`` when it is below ``minimal_effect``: a regression of that size would
    pass at most 1 − power of the time); ``p_value`` is anytime-valid: the smallest
    false-rollback rate at which this evidence would already fail the canary.
    """

    metric: str
    verdict: Verdict
    canary: float | None
    baseline: float | None
    effect: float | None
    interval: tuple[float, float]
    upper_at_power: float
    minimal_effect: float
    alpha: float
    p_value: float
    canary_samples: int
    baseline_samples: int
    more_requests: int | None
    unit: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe (an unbounded side becomes None), for the journal and report.json."""
        return {key: json_safe(value) for key, value in asdict(self).items()}


@dataclass(frozen=True)
class CanaryJudgement:
    """Every metric's judgement at one look, and the verdict of the canary as a whole."""

    judgements: tuple[MetricJudgement, ...]

    @property
    def verdict(self) -> Verdict:
        """fail if any metric fails; pass only if every metric passes (and there was one)."""
        return worst(item.verdict for item in self.judgements)

    @property
    def more_requests(self) -> int | None:
        """The canary requests the slowest undecided metric still needs (None: unknown)."""
        needs = [item.more_requests for item in self.judgements if item.verdict != "pass"]
        known = [need for need in needs if need is not None]
        return max(known) if known and len(known) == len(needs) else None

    def summary(self) -> str:
        """One line per metric, for logs and the journal."""
        return "; ".join(item.reason for item in self.judgements)

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "more_requests": self.more_requests,
            "metrics": [item.to_dict() for item in self.judgements],
        }


def json_safe(value: Any) -> Any:
    """Numbers as plain floats, infinities and NaN as None, tuples as lists: valid JSON."""
    if isinstance(value, tuple | list):
        return [json_safe(item) for item in value]
    if isinstance(value, float | np.floating):
        return float(f"{value:.6g}") if np.isfinite(value) else None  # 6 significant digits
    return value


def error_interval(canary: Samples, baseline: Samples, alpha: float) -> tuple[float, float]:
    """Both :func:`error_bound` s of two samples."""
    counts = (canary.errors, canary.requests, baseline.errors, baseline.requests)
    return float(error_bound(*counts, alpha, "lower")), float(error_bound(*counts, alpha, "upper"))


def latency_interval(
    canary: Samples, baseline: Samples, level: float, alpha: float
) -> tuple[float, float]:
    """:func:`latency_bounds` of two samples."""
    low, high = latency_bounds(
        np.cumsum(canary.latency_counts), np.cumsum(baseline.latency_counts), level, alpha
    )
    return float(low), float(high)


def anytime_p_value(lower_bound_at: Callable[[float], float]) -> float:
    """The smallest α at which the effect's lower bound is above zero (1: at no α).

    The lower bound grows with α (more risk, a narrower interval), so the crossing is found by
    bisection on log α; this is the sequential p-value of "the canary is no worse".
    """

    def margin(log_alpha: float) -> float:
        return 1.0 if lower_bound_at(float(np.exp(log_alpha))) > 0 else -1.0

    if margin(0.0) < 0:
        return 1.0
    if margin(float(np.log(_SMALLEST_P))) > 0:
        return _SMALLEST_P
    return float(np.exp(bisect(margin, np.log(_SMALLEST_P), 0.0, xtol=_P_TOLERANCE)))


def _verdict(lower: float, upper_at_power: float, minimal_effect: float) -> Verdict:
    if lower > 0:
        return "fail"
    return "pass" if upper_at_power < minimal_effect else "not-enough-data"


def _more(
    reached: Callable[[FloatArray, FloatArray], FloatArray], canary: int, baseline: int
) -> int | None:
    """Extra canary requests until ``reached`` holds, keeping today's baseline-to-canary ratio."""
    ratio = baseline / canary if canary else 1.0
    grid = np.unique(np.round(np.geomspace(max(canary, 10), max(canary, 10) * 1_000, 400)))
    hits = np.flatnonzero(reached(grid, grid * ratio))
    return int(grid[hits[0]] - canary) if hits.size else None


@dataclass(frozen=True)
class _Metric:
    """What differs between metrics: names, values, and how to bound and to plan the effect."""

    metric: str
    unit: str
    label: str  # "error ratio", "p99 latency"
    worse: str  # "worse", "slower"
    interval_at: Callable[[float], tuple[float, float]]  # α → the effect's bounds
    reached: Callable[[FloatArray, FloatArray], FloatArray]  # the planner, for "how many more"
    canary: float | None
    baseline: float | None
    effect: float | None
    samples: tuple[int, int]
    shown: str  # canary against baseline, in words
    amount: Callable[[float], str]  # an effect in words: "+1.20 points", "+24%"


def _judge(metric: _Metric, minimal_effect: float, alpha: float, power: float) -> MetricJudgement:
    """The verdict rules, the same for every metric (see the module's docstring)."""
    lower, upper = metric.interval_at(alpha)
    upper_at_power = metric.interval_at(1 - power)[1]
    verdict = _verdict(lower, upper_at_power, minimal_effect)
    more = _more(metric.reached, *metric.samples) if verdict == "not-enough-data" else None
    p_value = anytime_p_value(lambda a: metric.interval_at(a)[0])
    declared, at_most = metric.amount(minimal_effect), metric.amount(upper_at_power)
    reason = {
        "fail": f"{metric.worse} beyond doubt (≥ {metric.amount(lower)}, anytime {_p(p_value)})",
        "pass": f"less than {declared} {metric.worse} (at most {at_most})",
        "not-enough-data": f"cannot yet rule out {declared} (up to {at_most})"
        + (f"; ~{more:,} more canary requests needed" if more is not None else ""),
    }[verdict]
    return MetricJudgement(
        metric=metric.metric,
        verdict=verdict,
        canary=metric.canary,
        baseline=metric.baseline,
        effect=metric.effect,
        interval=(lower, upper),
        upper_at_power=upper_at_power,
        minimal_effect=minimal_effect,
        alpha=alpha,
        p_value=p_value,
        canary_samples=metric.samples[0],
        baseline_samples=metric.samples[1],
        more_requests=more,
        unit=metric.unit,
        reason=f"{metric.label}: {metric.shown} — {reason}",
    )


def judge_errors(
    canary: Samples,
    baseline: Samples,
    *,
    minimal_effect: float,
    alpha: float,
    power: float,
) -> MetricJudgement:
    """Judge the canary's error ratio against the baseline's (``minimal_effect``: absolute)."""
    c_ratio = canary.errors / canary.requests if canary.requests else None
    b_ratio = baseline.errors / baseline.requests if baseline.requests else None
    planned = b_ratio if b_ratio is not None else 0.0
    metric = _Metric(
        metric="error_ratio",
        unit="ratio",
        label="error ratio",
        worse="worse",
        interval_at=lambda a: error_interval(canary, baseline, a),
        reached=lambda c, b: error_reached("pass", planned, minimal_effect, c, b, alpha, power),
        canary=c_ratio,
        baseline=b_ratio,
        effect=c_ratio - b_ratio if c_ratio is not None and b_ratio is not None else None,
        samples=(canary.requests, baseline.requests),
        shown=f"canary {_pct(c_ratio)} ({canary.errors}/{canary.requests}) against baseline "
        f"{_pct(b_ratio)} ({baseline.errors}/{baseline.requests})",
        amount=lambda effect: f"{effect * 100:+.2f} points",
    )
    return _judge(metric, minimal_effect, alpha, power)


def judge_latency(
    canary: Samples,
    baseline: Samples,
    *,
    level: float,
    minimal_effect: float,
    alpha: float,
    power: float,
) -> MetricJudgement:
    """Judge a latency quantile of good answers (``minimal_effect``: relative, 0.2 = +20 %).

    A quantile test sees a regression that only widens the distribution (same median, longer
    tail), which a rank test of the median such as Mann-Whitney U does not.
    """
    name = f"p{level * 100:g}"
    c_cum, b_cum = np.cumsum(canary.latency_counts), np.cumsum(baseline.latency_counts)
    c_ms = float(quantile_estimate(c_cum, level)) if canary.good else None
    b_ms = float(quantile_estimate(b_cum, level)) if baseline.good else None
    measured = (
        _empirical_quantile(b_cum)
        if baseline.good >= _EMPIRICAL_TAIL_SAMPLES
        else lognorm(PLANNING_LATENCY_SIGMA).ppf
    )
    metric = _Metric(
        metric=f"latency_{name}",
        unit="ms",
        label=f"{name} latency",
        worse="slower",
        interval_at=lambda a: latency_interval(canary, baseline, level, a),
        reached=lambda c, b: latency_reached(
            "pass", measured, level, minimal_effect, c, b, alpha, power
        ),
        canary=c_ms,
        baseline=b_ms,
        effect=c_ms / b_ms - 1 if c_ms is not None and b_ms else None,
        samples=(canary.good, baseline.good),
        shown=f"canary {_ms(c_ms)} against baseline {_ms(b_ms)} "
        f"({canary.good}/{baseline.good} good answers)",
        amount=lambda effect: f"{effect:+.0%}",
    )
    return _judge(metric, minimal_effect, alpha, power)


def judge_canary(
    canary: Samples,
    baseline: Samples,
    *,
    error_effect: float,
    latency_floors: Mapping[float, float],
    false_rollback_rate: float,
    power: float,
) -> CanaryJudgement:
    """Every metric at once, splitting the false-rollback rate between them."""
    error_alpha, latency_alpha = metric_alphas(false_rollback_rate, len(latency_floors))
    judgements = [
        judge_errors(canary, baseline, minimal_effect=error_effect, alpha=error_alpha, power=power)
    ]
    judgements += [
        judge_latency(
            canary,
            baseline,
            level=level,
            minimal_effect=floor,
            alpha=latency_alpha,
            power=power,
        )
        for level, floor in sorted(latency_floors.items())
    ]
    return CanaryJudgement(tuple(judgements))


def _empirical_quantile(cumulative: npt.NDArray[np.int64]) -> Callable[[FloatArray], FloatArray]:
    """The baseline's measured quantile function (bin upper edges), for planning what is left."""
    shares = cumulative / cumulative[-1]

    def quantile(level: FloatArray) -> FloatArray:
        index = np.minimum(np.searchsorted(shares, level), len(BIN_EDGES_MS) - 2)
        return np.asarray(BIN_EDGES_MS[index + 1], dtype=np.float64)

    return quantile


def _p(p_value: float) -> str:
    return f"p < {_SMALLEST_P:g}" if p_value <= _SMALLEST_P else f"p = {p_value:.2g}"


def _pct(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.2%}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"
