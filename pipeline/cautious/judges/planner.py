"""The sample-size planner: how many canary requests each verdict needs, and when they arrive.

Pure arithmetic on the schedule (rate, canary shares, bake times) and the same confidence
sequences the judges use, evaluated at expected counts: a verdict is planned as reached when it
would be reached even if the estimate were ``z(power)`` standard errors on the unlucky side.
It answers, before anything runs, "detecting +1 point at 1 % baseline needs ~9,000 canary
requests: 90 s at 50 %", and warns when the schedule (with its longest extension) cannot get
there. Latency is planned for lognormal latencies of the given spread (σ of log-latency); the
judge's own estimate uses the baseline's measured distribution instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy.stats import lognorm, norm

from cautious.config import Config
from cautious.judges.bounds import error_bound
from cautious.judges.sequential import FloatArray, rank_bounds

__all__ = [
    "PLANNING_LATENCY_SIGMA",
    "CanaryPlanReport",
    "Goal",
    "MetricNeed",
    "Timeline",
    "error_reached",
    "latency_reached",
    "metric_alphas",
    "plan_canary",
    "plan_from_config",
    "timeline",
    "unequal_load",
]

PLANNING_LATENCY_SIGMA = 0.5  # log-latency spread assumed before anything was measured
_DT_S = 0.25  # the planner's clock tick: the runner's poll interval
_LOAD_RATIO_NOTED = 1.25  # a canary instance with this much more load than a baseline is noted

Goal = Literal["pass", "detect"]
QuantileFunction = Callable[[FloatArray], FloatArray]


@dataclass(frozen=True)
class Timeline:
    """Expected cumulative canary and baseline requests at each tick of a canary schedule."""

    seconds: FloatArray
    percent: FloatArray
    canary: FloatArray
    baseline: FloatArray
    scheduled_s: float  # the schedule's own length; past it is the last step's extension


def timeline(rate: float, percents: Sequence[int], bake_s: float, extension_s: float) -> Timeline:
    """Ticks of ``_DT_S`` through every judged step (all but the final 100 %), then extension."""
    judged = [p for p in percents if p < 100] or [100]
    per_step = max(1, round(bake_s / _DT_S))
    shares = np.repeat(np.asarray(judged, dtype=np.float64), per_step)
    shares = np.concatenate([shares, np.full(round(extension_s / _DT_S), float(judged[-1]))])
    canary = np.cumsum(rate * _DT_S * shares / 100)
    baseline = np.cumsum(rate * _DT_S * (100 - np.minimum(shares, 99.0)) / 100)
    seconds = np.asarray(_DT_S * np.arange(1, shares.size + 1), dtype=np.float64)
    return Timeline(seconds, shares, canary, baseline, per_step * len(judged) * _DT_S)


def metric_alphas(false_rollback_rate: float, latency_levels: int) -> tuple[float, float]:
    """The share of the false-rollback rate of the error metric and of each latency metric.

    Half for errors, half for latency split evenly between its quantiles (a union bound keeps
    the whole canary within the declared rate).
    """
    if latency_levels == 0:
        return false_rollback_rate, 0.0
    return false_rollback_rate / 2, false_rollback_rate / 2 / latency_levels


def _unlucky(power: float) -> float:
    return float(norm.ppf(power))


def error_reached(
    goal: Goal,
    baseline_ratio: float,
    effect: float,
    canary: FloatArray,
    baseline: FloatArray,
    alpha: float,
    power: float,
) -> FloatArray:
    """Whether the error judge would have reached ``goal`` at each (canary, baseline) count.

    ``pass``: an equal canary is shown to be less than ``effect`` worse; ``detect``: a canary
    worse by ``effect`` is failed.
    """
    p = baseline_ratio
    truth = p if goal == "pass" else min(p + effect, 1.0)
    risk = alpha if goal == "detect" else 1 - power
    spread = np.sqrt(
        truth * (1 - truth) / np.maximum(canary, 1) + p * (1 - p) / np.maximum(baseline, 1)
    )
    shift = _unlucky(power) * spread * (1 if goal == "pass" else -1)
    observed = np.clip(truth + shift, 0.0, 1.0)
    counts = (observed * canary, canary, p * baseline, baseline)
    if goal == "pass":
        return np.asarray(error_bound(*counts, risk, "upper") < effect)
    return np.asarray(error_bound(*counts, risk, "lower") > 0)


def latency_reached(
    goal: Goal,
    quantile: QuantileFunction,
    level: float,
    floor: float,
    canary: FloatArray,
    baseline: FloatArray,
    alpha: float,
    power: float,
) -> FloatArray:
    """Whether the latency judge would have reached ``goal`` at each (canary, baseline) count.

    ``quantile`` is the baseline's quantile function; a canary for ``detect`` is the baseline
    slowed by ``1 + floor``.
    """
    n_c, n_b = np.floor(canary), np.floor(baseline)
    risk = alpha if goal == "detect" else 1 - power
    c_lo, c_hi = rank_bounds(n_c, level, risk / 2)
    b_lo, b_hi = rank_bounds(n_b, level, risk / 2)
    wobble = _unlucky(power) * np.sqrt(level * (1 - level) / np.maximum(n_c, 1))

    def at(
        rank: npt.NDArray[np.int64], n: FloatArray, shift: FloatArray | float = 0.0
    ) -> FloatArray:
        share = np.clip(rank / np.maximum(n, 1) + shift, 1e-9, 1 - 1e-9)
        return quantile(share)

    if goal == "pass":
        upper = np.where(c_hi <= n_c, at(c_hi, n_c, wobble), np.inf)
        lower = np.where(b_lo >= 1, at(b_lo, n_b), 0.0)
        return np.asarray(upper < (1 + floor) * lower)
    lower_c = np.where(c_lo >= 1, (1 + floor) * at(c_lo, n_c, -wobble), 0.0)
    upper_b = np.where(b_hi <= n_b, at(b_hi, n_b), np.inf)
    return np.asarray(lower_c > upper_b)


@dataclass(frozen=True)
class MetricNeed:
    """When one metric's verdict is expected: canary requests and seconds into the bakes."""

    metric: str
    goal: Goal
    effect_text: str
    canary_requests: int | None  # None: not within the schedule and its longest extension
    seconds: float | None
    percent: float | None
    extends: bool  # reached only after the schedule's own bakes, in the extension

    def describe(self) -> str:
        what = (
            f"passing {self.metric} (ruling out {self.effect_text})"
            if self.goal == "pass"
            else f"detecting {self.effect_text} on {self.metric}"
        )
        if self.canary_requests is None:
            return f"{what}: not reachable within the schedule and its longest extension"
        where = f"{self.seconds:.0f} s of bakes, at {self.percent:g} %"
        extra = " (needs the extension)" if self.extends else ""
        return f"{what} needs ~{self.canary_requests:,} canary requests: {where}{extra}"


@dataclass(frozen=True)
class CanaryPlanReport:
    """The planner's answer for one schedule, and its warnings."""

    rate: float
    percents: tuple[int, ...]
    bake_s: float
    extension_s: float
    needs: tuple[MetricNeed, ...]
    cautions: tuple[str, ...] = ()

    @property
    def warnings(self) -> tuple[str, ...]:
        unreachable = tuple(
            f"{need.describe()}; raise the rate, the canary shares, canary.bake_s or "
            f"canary.max_extension_s, or declare a larger effect"
            for need in self.needs
            if need.canary_requests is None
        )
        return unreachable + self.cautions

    def lines(self) -> list[str]:
        head = (
            f"canary judge at {self.rate:g} req/s, steps "
            f"{', '.join(f'{p} %' for p in self.percents)}, {self.bake_s:g} s per step "
            f"(+ up to {self.extension_s:g} s at the last):"
        )
        judged = [p for p in self.percents if p < 100]
        per_step = ", ".join(f"{p} % → ~{self.rate * self.bake_s * p / 100:,.0f}" for p in judged)
        extension = self.rate * self.extension_s * judged[-1] / 100 if judged else 0.0
        arrive = (
            f"  canary requests per step: {per_step} (+ up to ~{extension:,.0f} in the extension)"
        )
        return [head, arrive, *(f"  {need.describe()}" for need in self.needs)]


def _first(
    metric: str, goal: Goal, effect_text: str, line: Timeline, reached: FloatArray
) -> MetricNeed:
    hits = np.flatnonzero(reached)
    if hits.size == 0:
        return MetricNeed(metric, goal, effect_text, None, None, None, False)
    i = int(hits[0])
    return MetricNeed(
        metric,
        goal,
        effect_text,
        int(np.ceil(line.canary[i])),
        float(line.seconds[i]),
        float(line.percent[i]),
        bool(line.seconds[i] > line.scheduled_s),
    )


def plan_canary(
    *,
    rate: float,
    percents: Sequence[int],
    bake_s: float,
    extension_s: float,
    error_effect: float,
    latency_floors: dict[float, float],
    false_rollback_rate: float,
    power: float,
    baseline_error_ratio: float,
    latency_sigma: float = PLANNING_LATENCY_SIGMA,
) -> CanaryPlanReport:
    """Plan every metric the judge will look at, for detecting its effect and for passing."""
    line = timeline(rate, percents, bake_s, extension_s)
    error_alpha, latency_alpha = metric_alphas(false_rollback_rate, len(latency_floors))
    points = f"+{error_effect * 100:g} point{'s' if error_effect != 0.01 else ''}"
    at_baseline = f"{points} at {baseline_error_ratio:.1%} baseline"
    needs = [
        _first(
            "error ratio",
            goal,
            at_baseline,
            line,
            error_reached(
                goal,
                baseline_error_ratio,
                error_effect,
                line.canary,
                line.baseline,
                error_alpha,
                power,
            ),
        )
        for goal in ("detect", "pass")
    ]
    quantile = lognorm(latency_sigma).ppf
    for level, floor in sorted(latency_floors.items()):
        name = f"p{level * 100:g} latency"
        for goal in ("detect", "pass"):
            reached = latency_reached(
                goal, quantile, level, floor, line.canary, line.baseline, latency_alpha, power
            )
            needs.append(_first(name, goal, f"+{floor:.0%}", line, reached))
    return CanaryPlanReport(rate, tuple(percents), bake_s, extension_s, tuple(needs))


def unequal_load(percents: Sequence[int], canaries: int, baselines: int) -> tuple[str, ...]:
    """Steps at which a canary instance serves more requests than a baseline instance.

    Latency is compared per instance: on a busy service, an instance with more load is slower
    for that reason alone, and the judge would count it against the release.
    """
    cautions = []
    for percent in (p for p in percents if p < 100):
        ratio = (percent / canaries) / ((100 - percent) / baselines)
        if ratio > _LOAD_RATIO_NOTED:
            cautions.append(
                f"at {percent} % each canary instance serves {ratio:.1f}× the requests of a "
                f"baseline instance: its latency is judged under a heavier load"
            )
    return tuple(cautions)


def plan_from_config(config: Config) -> CanaryPlanReport:
    """The plan for a configuration's canary: its load rate, canary steps and judge settings."""
    judge = config.canary
    planned = plan_canary(
        rate=config.load.rate,
        percents=config.rollout.canary_steps,
        bake_s=judge.bake_s,
        extension_s=judge.max_extension_s,
        error_effect=judge.detect.error_ratio,
        latency_floors=judge.detect.latency_floors(),
        false_rollback_rate=judge.false_rollback_rate,
        power=judge.power,
        baseline_error_ratio=judge.baseline_error_ratio,
    )
    if not judge.detect.latency_floors():
        return planned
    cautions = unequal_load(
        config.rollout.canary_steps, config.rollout.canary_instances, config.cluster.instances
    )
    return replace(planned, cautions=cautions)
