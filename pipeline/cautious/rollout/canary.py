"""The canary gate: a judged bake that asks the judge at every look and never computes statistics.

The gate reads per-instance samples from the request log that load is writing (nothing flows
backwards: the gate only reads what load already wrote) and hands canary and baseline samples to
:func:`cautious.judges.judge.judge_canary`. It stops at the first ``fail``; the decisive bake
(the last before promotion) must reach ``pass``, and is extended up to its bound while the
judge says ``not-enough-data`` — then promotion is refused with that verdict. A canary that
gets no traffic therefore ends ``not-enough-data``, never a silent pass.

The load balancer's per-server counters are the cross-check: without a request log (a rollout
run without load measurement) they are the samples — requests and 5xx only, so only the error
ratio is judged.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from cautious.cluster.balancer import LoadBalancer, ServerStat
from cautious.config import Config
from cautious.exceptions import GateFailed
from cautious.judges.judge import CanaryJudgement, json_safe, judge_canary
from cautious.judges.samples import RequestLogTail, Samples, quantile_estimate
from cautious.rollout.plan import Bake
from cautious.verdict import Verdict

__all__ = ["CanaryGate", "CanaryRefused", "CounterSamples", "GateLook", "SampleSource"]

_JUDGE_EVERY_S = 1.0  # the calibration simulates exactly this cadence
_ATTRIBUTED_AT_LEAST = 0.5  # below this share of the LB's count, the request log is suspect
_REPORTED_LEVELS = (0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999)


class SampleSource(Protocol):
    """Where a gate's samples come from: re-read with ``poll``, merged per set of instances."""

    def poll(self) -> int: ...

    def samples(self, instances: Iterable[str]) -> Samples: ...


class CounterSamples:
    """Samples from the load balancer's per-server counters since the gate started.

    Requests and 5xx answers only (no latency): the fallback when no request log is written,
    and the cross-check when one is.
    """

    def __init__(self, runtime: LoadBalancer) -> None:
        self._runtime = runtime
        self._start: dict[str, ServerStat] = runtime.stats()
        self._now: dict[str, ServerStat] = self._start

    def poll(self) -> int:
        self._now = self._runtime.stats()
        return 0

    def samples(self, instances: Iterable[str]) -> Samples:
        requests = errors = 0
        for name in instances:
            first, last = self._start.get(name), self._now.get(name)
            if last is None:
                continue
            requests += max(0, last.total_sessions - (first.total_sessions if first else 0))
            errors += max(0, last.responses_5xx - (first.responses_5xx if first else 0))
        return Samples(requests, min(errors, requests), Samples.empty().latency_counts)


class CanaryRefused(GateFailed):
    """The gate said fail or not-enough-data; ``facts`` keep its judgement for the journal."""

    def __init__(self, message: str, verdict: Verdict, facts: dict[str, Any]) -> None:
        super().__init__(message, verdict=verdict)
        self.facts = facts


@dataclass(frozen=True)
class GateLook:
    """One look of the judge: when (seconds since the canary took traffic) and what it saw."""

    t: float
    verdict: str
    canary_requests: int
    canary_error_ratio: float | None
    baseline_error_ratio: float | None
    canary_p99_ms: float | None
    baseline_p99_ms: float | None

    def to_dict(self) -> dict[str, Any]:
        return {key: json_safe(value) for key, value in asdict(self).items()}


class CanaryGate:
    """Judges the canary bakes of one rollout; samples accumulate from the first judged bake."""

    def __init__(
        self,
        config: Config,
        runtime: LoadBalancer,
        *,
        request_logs: Sequence[Path],
        poll_s: float,
        check_watched: Callable[[Sequence[str]], None],
        say: Callable[[str], None],
    ) -> None:
        self.config = config
        self.runtime = runtime
        self.request_logs = tuple(request_logs)
        self.poll_s = poll_s
        self.check_watched = check_watched
        self.say = say
        self.looks: list[GateLook] = []
        self._began: float | None = None
        self._source: SampleSource | None = None
        self._counters: CounterSamples | None = None

    def _start(self) -> None:
        self._began = time.time()
        self._counters = CounterSamples(self.runtime)
        self._source = (
            RequestLogTail(self.request_logs, since=self._began)
            if self.request_logs
            else self._counters
        )

    def bake(self, step: Bake) -> dict[str, Any]:
        """Bake one canary step; returns the journal's facts, raises :class:`CanaryRefused`."""
        if self._source is None:
            self._start()
        assert self._source is not None and self._counters is not None
        began = time.monotonic()
        first_look = len(self.looks)
        settled = began + step.seconds
        bound = settled + step.extend_s
        next_look = min(began + _JUDGE_EVERY_S, settled)
        while True:
            self.check_watched(step.watch)
            now = time.monotonic()
            if now >= next_look:
                judged = self._judge(step)
                # Once a second, and always at the end of the bake and of its extension.
                next_look = min(now + _JUDGE_EVERY_S, settled if now < settled else bound)
                if judged.verdict == "fail":
                    facts = self._facts(step, judged, now - began, first_look)
                    raise CanaryRefused(f"canary: {_failing(judged)}", "fail", facts)
                if now >= settled and (not step.extend_s or judged.verdict == "pass"):
                    return self._facts(step, judged, now - began, first_look)
                if now >= bound:
                    raise CanaryRefused(
                        f"canary: not enough data to promote after {now - began:.0f} s "
                        f"({_undecided(judged)})",
                        "not-enough-data",
                        self._facts(step, judged, now - began, first_look),
                    )
            time.sleep(self.poll_s)

    def _judge(self, step: Bake) -> CanaryJudgement:
        assert self._source is not None and self._counters is not None and self._began is not None
        self._source.poll()
        self._counters.poll()
        canary = self._source.samples(step.watch)
        baseline = self._source.samples(step.judge_against)
        settings = self.config.canary
        latency = settings.detect.latency_floors() if self._source is not self._counters else {}
        judged = judge_canary(
            canary,
            baseline,
            error_effect=settings.detect.error_ratio,
            latency_floors=latency,
            false_rollback_rate=settings.false_rollback_rate,
            power=settings.power,
        )
        by_metric = {item.metric: item for item in judged.judgements}
        ceiling = self.config.rollout.canary_max_error_ratio
        if (
            by_metric["error_ratio"].verdict != "fail"
            and canary.requests >= self.config.rollout.canary_min_requests
            and canary.errors > ceiling * canary.requests
        ):
            judged = _over_ceiling(judged, canary, ceiling)
        errors, p99 = by_metric["error_ratio"], by_metric.get("latency_p99")
        self.looks.append(
            GateLook(
                t=round(time.time() - self._began, 2),
                verdict=judged.verdict,
                canary_requests=canary.requests,
                canary_error_ratio=errors.canary,
                baseline_error_ratio=errors.baseline,
                canary_p99_ms=p99.canary if p99 else None,
                baseline_p99_ms=p99.baseline if p99 else None,
            )
        )
        return judged

    def _facts(
        self, step: Bake, judged: CanaryJudgement, seconds: float, first_look: int
    ) -> dict[str, Any]:
        """What the journal keeps of a judged bake: the judgement, both latency distributions,
        the cross-check, and this bake's looks."""
        assert self._source is not None and self._counters is not None
        counted = self._counters.samples(step.watch).requests
        logged = self._source.samples(step.watch).requests
        facts: dict[str, Any] = {
            "judgement": judged.to_dict(),
            "latency_quantiles": {
                side: _quantiles(self._source.samples(slots))
                for side, slots in (("canary", step.watch), ("baseline", step.judge_against))
            },
            "baked_s": round(seconds, 2),
            "extended_s": round(max(0.0, seconds - step.seconds), 2),
            "samples_from": "request log" if self._source is not self._counters else "lb counters",
            "lb_canary_requests": counted,
            "looks": [look.to_dict() for look in self.looks[first_look:]],
        }
        if (
            self._source is not self._counters
            and counted > 100
            and (logged < _ATTRIBUTED_AT_LEAST * counted)
        ):
            warning = (
                f"the request log attributes {logged} requests to the canary, the load balancer "
                f"counted {counted}: is the X-Instance header set?"
            )
            self.say(f"canary: {warning}")
            facts["cross_check"] = warning
        return facts


def _over_ceiling(judged: CanaryJudgement, canary: Samples, ceiling: float) -> CanaryJudgement:
    """The hard ceiling (``rollout.canary_max_error_ratio``) fails the error metric outright."""
    ratio = canary.errors / canary.requests
    items = tuple(
        replace(
            item,
            verdict="fail",
            reason=f"error ratio: canary {ratio:.2%} ({canary.errors}/{canary.requests}) is "
            f"above the hard ceiling of {ceiling:.1%}",
        )
        if item.metric == "error_ratio"
        else item
        for item in judged.judgements
    )
    return CanaryJudgement(items)


def _failing(judged: CanaryJudgement) -> str:
    return "; ".join(item.reason for item in judged.judgements if item.verdict == "fail")


def _undecided(judged: CanaryJudgement) -> str:
    return "; ".join(item.reason for item in judged.judgements if item.verdict != "pass")


def _quantiles(samples: Samples) -> dict[str, float | None]:
    """The latency distribution in a few numbers (ms at each level), for the report's chart."""
    cumulative = np.cumsum(samples.latency_counts)
    return {
        f"{level:g}": json_safe(float(quantile_estimate(cumulative, level)))
        for level in _REPORTED_LEVELS
    }
