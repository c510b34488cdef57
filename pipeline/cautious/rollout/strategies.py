"""Strategies: pure planners turning (the instances running now, free slots) into a Plan.

- ``rolling``: replace instances in place, a batch at a time (batch ≤ max_unavailable);
- ``stop-and-go``: take every instance out, start them all on the new release — the outage is
  measured, not hidden. With ``read_only``, the old release instead keeps serving reads while
  the LB refuses writes, the new release starts beside it, traffic switches, writes resume;
- ``blue-green``: warm a full green set out of rotation, switch the LB, keep blue running until
  the bake ends, then retire it;
- ``canary``: add canary instances, shift LB weight to them in steps with a judged bake at each,
  then promote: replace the baselines in place and retire the canaries.
"""

from __future__ import annotations

from collections.abc import Sequence

from cautious.config import CanaryConfig, RolloutConfig, StrategyName
from cautious.exceptions import ConfigError
from cautious.rollout.plan import (
    Bake,
    Plan,
    ReadOnly,
    Retire,
    SetWeights,
    Shadow,
    Start,
    Step,
    Switch,
)

__all__ = ["MAX_WEIGHT", "canary_weights", "make_plan"]

MAX_WEIGHT = 256  # HAProxy's largest server weight


def make_plan(
    strategy: StrategyName,
    current: Sequence[str],
    free: Sequence[str],
    rollout: RolloutConfig,
    canary: CanaryConfig | None = None,
) -> Plan:
    """The plan of ``strategy`` for a cluster running ``current`` with ``free`` slots spare.

    ``canary``: the judge's settings (bake and extension of each judged step; default: the
    defaults).
    """
    if not current:
        raise ConfigError("the cluster runs no instances; run `invoke sandbox.up` first")
    running = tuple(current)
    match strategy:
        case "rolling":
            return Plan(strategy, running, _rolling(running, rollout), running)
        case "stop-and-go" if rollout.read_only:
            fresh = _take(free, len(running), "read-only mode needs a free slot per instance")
            steps: tuple[Step, ...] = (
                ReadOnly(on=True),
                Start(fresh, in_rotation=False),
                Switch(into=fresh, out_of=running),
                ReadOnly(on=False),
                Bake(rollout.bake_s, fresh),
                Retire(running),
            )
            return Plan(strategy, running, steps, fresh)
        case "stop-and-go":
            steps = (
                Retire(running, keep_serving=False),
                Start(running),
                Bake(rollout.bake_s, running),
            )
            return Plan(strategy, running, steps, running)
        case "blue-green":
            green = _take(free, len(running), "blue-green needs a free slot per instance")
            steps = (
                Start(green, in_rotation=False),
                Switch(into=green, out_of=running),
                Bake(rollout.bake_s, green),
                Retire(running),
            )
            return Plan(strategy, running, steps, green)
        case "canary":
            canaries = _take(free, rollout.canary_instances, "canary needs free slots")
            steps = _canary(running, canaries, rollout, canary or CanaryConfig())
            return Plan(strategy, running, steps, running)


def canary_weights(percent: int, canaries: int, baselines: int) -> tuple[int, int]:
    """LB weights (canary, baseline) that send ``percent`` % of requests to the canaries."""
    if not 0 < percent < 100:
        raise ValueError(f"a canary share is between 0 and 100 %, not {percent}")
    ratio = percent * baselines / (canaries * (100 - percent))  # canary weight / baseline weight
    if ratio <= 1:
        return max(1, round(MAX_WEIGHT * ratio)), MAX_WEIGHT
    return MAX_WEIGHT, max(1, round(MAX_WEIGHT / ratio))


def _rolling(slots: tuple[str, ...], rollout: RolloutConfig) -> tuple[Step, ...]:
    size = min(rollout.batch_size, rollout.max_unavailable)
    steps: list[Step] = []
    for first in range(0, len(slots), size):
        batch = slots[first : first + size]
        steps += [Retire(batch), Start(batch), Bake(rollout.bake_s, batch)]
    return tuple(steps)


def _canary(
    baselines: tuple[str, ...],
    canaries: tuple[str, ...],
    rollout: RolloutConfig,
    judge: CanaryConfig,
) -> tuple[Step, ...]:
    steps: list[Step] = [Start(canaries, in_rotation=False)]
    if judge.shadow:
        steps.append(Shadow(judge.shadow_s, canaries))
    enter = canaries
    judged = rollout.canary_steps[:-1]  # the last step is always 100: promotion
    for index, percent in enumerate(judged):
        canary_weight, baseline_weight = canary_weights(percent, len(canaries), len(baselines))
        weights = tuple((slot, canary_weight) for slot in canaries) + tuple(
            (slot, baseline_weight) for slot in baselines
        )
        decisive = index == len(judged) - 1
        steps += [
            SetWeights(weights, enter=enter, percent=percent),
            Bake(
                judge.bake_s,
                canaries,
                judge_against=baselines,
                extend_s=judge.max_extension_s if decisive else 0.0,
            ),
        ]
        enter = ()
    equal = tuple((slot, 1) for slot in (*canaries, *baselines))
    steps.append(SetWeights(equal, enter=enter, percent=100))
    steps += _rolling(baselines, rollout)
    steps.append(Retire(canaries))
    return tuple(steps)


def _take(free: Sequence[str], count: int, why: str) -> tuple[str, ...]:
    if len(free) < count:
        raise ConfigError(f"{why}: {count} needed, {len(free)} available")
    return tuple(free[:count])
