"""Start-up is a distribution: tail warnings and rollout-time estimates from the journal.

Each journaled start step records every new instance's time to ready. Two things follow from
that distribution, and neither from its mean:

- a readiness deadline (``rollout.ready_timeout_s``) acts as a watchdog: when it sits inside
  the tail of observed start-ups, a slow but healthy starter is killed and the rollout rolls
  back. :func:`tail_warnings` says so, with the share of start-ups the deadline would cut off
  (observed, and estimated from a lognormal fit, since a right-skewed start-up has a tail that
  a few samples have not reached yet);
- the slowest instance of a batch defines the batch, so a plan's duration is a sum of maxima.
  :func:`estimate_rollout` resamples the journal (times to ready of the release, the other
  steps' durations, the rollout's own overhead) through the plan many times and reports the
  p50 and p99 of the total.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cautious.rollout.journal import RolloutRecord
from cautious.rollout.plan import Bake, Plan, Start

__all__ = [
    "TAIL_SHARE",
    "RolloutEstimate",
    "TailWarning",
    "estimate_rollout",
    "startup_samples",
    "tail_warnings",
]

TAIL_SHARE = 0.001  # a deadline that cuts off one start-up in a thousand is inside the tail
_RUNS = 2_000
_SEED = 20_261_201  # fixed: the same journal gives the same estimate


def startup_samples(rollouts: Sequence[RolloutRecord]) -> dict[str, list[float]]:
    """Every journaled time to ready, per release label."""
    samples: dict[str, list[float]] = {}
    for record in rollouts:
        for step in record.steps:
            for sample in step.get("ready_s", []):
                samples.setdefault(str(sample["release"]), []).append(float(sample["seconds"]))
    return samples


@dataclass(frozen=True)
class TailWarning:
    """A readiness deadline inside a release's start-up tail."""

    release: str
    deadline_s: float
    samples: int
    observed_beyond: int  # journaled start-ups that took the deadline or longer
    estimated_share: float  # lognormal fit: the share of start-ups the deadline cuts off
    p99_s: float
    max_s: float

    def rollout_failure_chance(self, instances: int) -> float:
        """The chance that at least one of ``instances`` new instances misses the deadline."""
        share = max(self.estimated_share, self.observed_beyond / self.samples)
        return 1 - (1 - share) ** instances

    def message(self, instances: int) -> str:
        return (
            f"{self.release}: ready_timeout_s {self.deadline_s:g} s sits inside the start-up "
            f"tail (p99 {self.p99_s:.1f} s, max {self.max_s:.1f} s of {self.samples}; "
            f"{self.observed_beyond} reached the deadline, about "
            f"{self.estimated_share:.1%} would by a lognormal fit): a rollout of {instances} "
            f"instances rolls a healthy release back with a chance of about "
            f"{self.rollout_failure_chance(instances):.1%}; raise ready_timeout_s"
        )


def tail_warnings(
    samples: Mapping[str, Sequence[float]], deadline_s: float, *, share: float = TAIL_SHARE
) -> list[TailWarning]:
    """A warning per release whose start-ups reached the deadline or are estimated to, in at
    least ``share`` of starts."""
    warnings = []
    for release, values in sorted(samples.items()):
        if not values:
            continue
        beyond = sum(1 for value in values if value >= deadline_s)
        estimated = _lognormal_share_beyond(values, deadline_s)
        if beyond or estimated >= share:
            warnings.append(
                TailWarning(
                    release=release,
                    deadline_s=deadline_s,
                    samples=len(values),
                    observed_beyond=beyond,
                    estimated_share=estimated,
                    p99_s=_quantile(values, 0.99),
                    max_s=max(values),
                )
            )
    return warnings


def _lognormal_share_beyond(values: Sequence[float], deadline_s: float) -> float:
    """P(T ≥ deadline) for a lognormal fitted to ``values`` (0 with fewer than 2 samples)."""
    logs = [math.log(value) for value in values if value > 0]
    if len(logs) < 2:
        return 0.0
    mu, sigma = statistics.fmean(logs), statistics.stdev(logs)
    if sigma == 0:
        return 1.0 if math.exp(mu) >= deadline_s else 0.0
    return 1 - statistics.NormalDist(mu, sigma).cdf(math.log(deadline_s))


@dataclass(frozen=True)
class RolloutEstimate:
    """The plan's duration as the journal predicts it."""

    p50_s: float
    p99_s: float
    release: str
    startup_samples: int
    rollouts: int  # succeeded rollouts of the same strategy the other durations come from
    assumed: tuple[str, ...]  # step kinds with no history: their declared time was used

    def line(self) -> str:
        basis = (
            f"from {self.startup_samples} start-ups of {self.release} and "
            f"{self.rollouts} earlier rollouts"
        )
        if self.assumed:
            basis += f"; no history for {', '.join(self.assumed)}"
        return f"expected rollout time: p50 {self.p50_s:.1f} s, p99 {self.p99_s:.1f} s ({basis})"


@dataclass(frozen=True)
class _History:
    """The journal's durations, the pools the estimate draws from."""

    ready: list[float]
    start_overhead: list[float]
    by_kind: dict[str, list[float]]
    rollout_overhead: list[float]
    rollouts: int


def estimate_rollout(
    plan: Plan, release: str, history: Sequence[RolloutRecord], *, runs: int = _RUNS
) -> RolloutEstimate | None:
    """p50 and p99 of the plan's duration, or None without a single journaled start-up."""
    pools = _history(plan.strategy, release, history)
    if not pools.ready:
        return None
    rng = random.Random(_SEED)
    assumed = sorted(
        {
            _kind(step)
            for step in plan.steps
            if not isinstance(step, Start) and not pools.by_kind.get(_kind(step))
        }
    )
    totals = sorted(_simulate(plan, pools, rng) for _ in range(runs))
    return RolloutEstimate(
        p50_s=_quantile(totals, 0.5),
        p99_s=_quantile(totals, 0.99),
        release=release,
        startup_samples=len(pools.ready),
        rollouts=pools.rollouts,
        assumed=tuple(assumed),
    )


def _simulate(plan: Plan, pools: _History, rng: random.Random) -> float:
    total = _draw(pools.rollout_overhead, rng)
    for step in plan.steps:
        if isinstance(step, Start):
            slowest = max(rng.choice(pools.ready) for _ in step.slots)
            total += _draw(pools.start_overhead, rng) + slowest
        elif pools.by_kind.get(_kind(step)):
            total += rng.choice(pools.by_kind[_kind(step)])
        elif isinstance(step, Bake):
            total += step.seconds
    return total


def _history(strategy: str, release: str, rollouts: Sequence[RolloutRecord]) -> _History:
    samples = startup_samples(rollouts)
    ready = samples.get(release) or [value for values in samples.values() for value in values]
    alike = [
        record
        for record in rollouts
        if record.outcome == "succeeded" and record.begin.get("strategy") == strategy
    ]
    start_overhead: list[float] = []
    by_kind: dict[str, list[float]] = {}
    rollout_overhead: list[float] = []
    for record in alike:
        forward = [step for step in record.steps if step.get("phase", "forward") == "forward"]
        durations = [_duration(step) for step in forward]
        for step, seconds in zip(forward, durations, strict=True):
            if step.get("kind") == "start":
                slowest = max((float(s["seconds"]) for s in step.get("ready_s", [])), default=0.0)
                start_overhead.append(max(0.0, seconds - slowest))
            else:
                by_kind.setdefault(str(step.get("kind")), []).append(seconds)
        if record.end is not None:
            elapsed = float(record.end["time"]) - float(record.begin["time"])
            rollout_overhead.append(max(0.0, elapsed - sum(durations)))
    return _History(ready, start_overhead, by_kind, rollout_overhead, len(alike))


def _duration(step: Mapping[str, Any]) -> float:
    ended = step.get("ended")
    return 0.0 if ended is None else max(0.0, float(ended) - float(step["started"]))


def _kind(step: object) -> str:
    return type(step).__name__.lower()


def _draw(pool: Sequence[float], rng: random.Random) -> float:
    return rng.choice(pool) if pool else 0.0


def _quantile(values: Sequence[float], q: float) -> float:
    """Nearest rank: an observed value, never an interpolation below the tail."""
    ordered = sorted(values)
    rank = math.ceil(round(q * len(ordered), 9))
    return ordered[min(max(rank, 1), len(ordered)) - 1]
