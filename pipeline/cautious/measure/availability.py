"""Availability measured from a request log, with the definitions DESIGN.md fixes for everyone.

Everything is built on per-second rows, and every total is a sum of those rows, so the figures
in a report always add up:

- a request belongs to the second in which it *started*; the first and last seconds of the log
  are partial (load started and stopped inside them) and are dropped, together with their
  requests; seconds in between with no request at all are kept (sent = 0: an outage);
- ``good`` = :attr:`RequestRecord.ok`; ``failed`` = sent - good;
- ``missing`` = max(0, target rate - sent), rounded down to whole requests: a closed-loop load
  generator sends *fewer* requests during an outage, and counting only what was sent would
  hide it. A shortfall within the pacing jitter (``max(2, 2 %)`` of the target: a request
  that lands just across a second boundary) is not counted, or a perfect run at 200 req/s
  would score 0.998. Without a target rate (load against an arbitrary server) missing is 0;
- success ratio = good / (sent + missing);
- longest error window = the longest run of consecutive seconds with any failed or missing
  request; seconds with errors = how many seconds have one;
- error budget used = (failed + missing) / ((1 - SLO) * (sent + missing)): 1.0 means the whole
  budget the SLO allows for this much traffic is gone;
- latency percentiles are nearest-rank over every request sent, failed ones included (the user
  waited for those too).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

from cautious.measure.requestlog import RequestRecord

__all__ = [
    "PHASES",
    "UNATTRIBUTED",
    "Availability",
    "Breakdown",
    "Phase",
    "SecondRow",
    "WindowStats",
    "compute_availability",
]

Phase = Literal["before", "during", "after"]
PHASES: tuple[Phase, ...] = ("before", "during", "after")

UNATTRIBUTED = "(none)"
"""The instance/release key for responses without X-Instance/X-Release (connection errors,
answers from the load balancer itself)."""


@dataclass(frozen=True)
class SecondRow:
    """One full second of load: what was sent, what went wrong, how slow it was."""

    t: int
    sent: int
    good: int
    failed: int
    missing: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None

    @property
    def errors(self) -> int:
        """Failed plus missing: what a user would have noticed in this second."""
        return self.failed + self.missing

    def to_dict(self) -> dict[str, Any]:
        """The report.json form."""
        return asdict(self)


@dataclass(frozen=True)
class WindowStats:
    """Availability over a run of whole seconds: the whole measurement, or one phase of it.

    ``start``/``end`` are epoch seconds, ``end`` exclusive; both are None for an empty window.
    Ratios and percentiles are None when there is nothing to divide or rank.
    """

    start: int | None
    end: int | None
    seconds: int
    sent: int
    good: int
    failed: int
    missing: int
    success_ratio: float | None
    longest_error_window_s: int
    seconds_with_errors: int
    error_budget_used: float | None
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None

    def to_dict(self) -> dict[str, Any]:
        """The report.json form."""
        return {field.name: getattr(self, field.name) for field in fields(WindowStats)}


@dataclass(frozen=True)
class Breakdown:
    """The requests one instance (or one release) answered. Missing requests belong to nobody."""

    sent: int
    good: int
    failed: int
    success_ratio: float
    p50_ms: float | None
    p99_ms: float | None

    def to_dict(self) -> dict[str, Any]:
        """The report.json form."""
        return asdict(self)


@dataclass(frozen=True)
class Availability(WindowStats):
    """The whole measurement: overall figures, per-second rows, phases and breakdowns.

    ``phases`` holds ``before``/``during``/``after`` when a rollout window was given, else is
    empty. Breakdown keys are instance/release names, :data:`UNATTRIBUTED` for none.
    """

    target_rate: float | None
    slo: float | None
    per_second: tuple[SecondRow, ...]
    phases: dict[str, WindowStats]
    per_instance: dict[str, Breakdown]
    per_release: dict[str, Breakdown]

    def to_dict(self) -> dict[str, Any]:
        """The report.json ``availability`` object: overall figures flat, breakdowns nested."""
        return {
            **super().to_dict(),
            "target_rate": self.target_rate,
            "slo": self.slo,
            "per_second": [row.to_dict() for row in self.per_second],
            "phases": {name: stats.to_dict() for name, stats in self.phases.items()},
            "per_instance": {name: b.to_dict() for name, b in self.per_instance.items()},
            "per_release": {name: b.to_dict() for name, b in self.per_release.items()},
        }


def compute_availability(
    records: Iterable[RequestRecord],
    *,
    target_rate: float | None = None,
    slo: float | None = None,
    rollout_start: float | None = None,
    rollout_end: float | None = None,
) -> Availability:
    """Measure availability from a request log.

    ``target_rate`` (requests/s) turns a shortfall into missing requests; ``slo`` (a success
    ratio such as 0.999) sizes the error budget. With ``rollout_start`` (and ``rollout_end``,
    absent while a rollout never finished), seconds are split into phases: a second that
    overlaps the rollout at all is ``during`` it, so its errors are never blamed on the
    steady state.
    """
    if target_rate is not None and target_rate <= 0:
        raise ValueError(f"target_rate must be positive, not {target_rate}")
    if slo is not None and not 0 <= slo <= 1:
        raise ValueError(f"slo must be a ratio between 0 and 1, not {slo}")
    if rollout_start is not None and rollout_end is not None and rollout_end < rollout_start:
        raise ValueError(f"rollout_end {rollout_end} is before rollout_start {rollout_start}")

    by_second: defaultdict[int, list[RequestRecord]] = defaultdict(list)
    for record in records:
        by_second[math.floor(record.start)].append(record)
    measured = range(min(by_second) + 1, max(by_second)) if by_second else range(0)

    rows: list[SecondRow] = []
    latencies: list[list[float]] = []
    kept: list[RequestRecord] = []
    for t in measured:
        second = by_second.get(t, [])
        kept.extend(second)
        sent = len(second)
        good = sum(1 for record in second if record.ok)
        ranked = sorted(record.latency_ms for record in second)
        rows.append(
            SecondRow(
                t=t,
                sent=sent,
                good=good,
                failed=sent - good,
                missing=_missing(target_rate, sent),
                p50_ms=_percentile(ranked, 50),
                p95_ms=_percentile(ranked, 95),
                p99_ms=_percentile(ranked, 99),
            )
        )
        latencies.append(ranked)

    overall = _window(rows, latencies, slo)
    phases: dict[str, WindowStats] = {}
    if rollout_start is not None:
        for phase in PHASES:
            chosen = [
                i
                for i, row in enumerate(rows)
                if _phase_of(row.t, rollout_start, rollout_end) == phase
            ]
            phases[phase] = _window([rows[i] for i in chosen], [latencies[i] for i in chosen], slo)
    return Availability(
        **asdict(overall),
        target_rate=target_rate,
        slo=slo,
        per_second=tuple(rows),
        phases=phases,
        per_instance=_breakdown(kept, lambda record: record.instance),
        per_release=_breakdown(kept, lambda record: record.release),
    )


JITTER_SLACK_REQUESTS = 2.0
JITTER_SLACK_RATIO = 0.02


def _missing(target_rate: float | None, sent: int) -> int:
    if target_rate is None:
        return 0
    shortfall = target_rate - sent
    if sent == 0:  # a second with nothing sent is an outage whatever the rate
        return max(1, math.floor(shortfall))
    slack = max(JITTER_SLACK_REQUESTS, JITTER_SLACK_RATIO * target_rate)
    return math.floor(shortfall) if shortfall > slack else 0


def _percentile(ranked: Sequence[float], percent: int) -> float | None:
    """Nearest rank: the smallest value with at least ``percent`` % of values at or below it."""
    if not ranked:
        return None
    rank = -(-percent * len(ranked) // 100)  # ceil, in integers so 99 % of 100 is exactly 99
    return ranked[rank - 1]


def _phase_of(t: int, rollout_start: float, rollout_end: float | None) -> Phase:
    if t + 1 <= rollout_start:
        return "before"
    if rollout_end is not None and t >= rollout_end:
        return "after"
    return "during"


def _window(
    rows: Sequence[SecondRow], latencies: Sequence[list[float]], slo: float | None
) -> WindowStats:
    sent = sum(row.sent for row in rows)
    good = sum(row.good for row in rows)
    failed = sum(row.failed for row in rows)
    missing = sum(row.missing for row in rows)
    longest = run = 0
    for row in rows:
        run = run + 1 if row.errors else 0
        longest = max(longest, run)
    total = sent + missing
    budget: float | None = None
    if slo is not None and slo < 1 and total:
        budget = (failed + missing) / ((1 - slo) * total)
    ranked = sorted(latency for second in latencies for latency in second)
    return WindowStats(
        start=rows[0].t if rows else None,
        end=rows[-1].t + 1 if rows else None,
        seconds=len(rows),
        sent=sent,
        good=good,
        failed=failed,
        missing=missing,
        success_ratio=good / total if total else None,
        longest_error_window_s=longest,
        seconds_with_errors=sum(1 for row in rows if row.errors),
        error_budget_used=budget,
        p50_ms=_percentile(ranked, 50),
        p95_ms=_percentile(ranked, 95),
        p99_ms=_percentile(ranked, 99),
    )


def _breakdown(
    records: Sequence[RequestRecord], key_of: Callable[[RequestRecord], str]
) -> dict[str, Breakdown]:
    grouped: defaultdict[str, list[RequestRecord]] = defaultdict(list)
    for record in records:
        grouped[key_of(record) or UNATTRIBUTED].append(record)
    result: dict[str, Breakdown] = {}
    for key in sorted(grouped):
        group = grouped[key]
        good = sum(1 for record in group if record.ok)
        ranked = sorted(record.latency_ms for record in group)
        result[key] = Breakdown(
            sent=len(group),
            good=good,
            failed=len(group) - good,
            success_ratio=good / len(group),
            p50_ms=_percentile(ranked, 50),
            p99_ms=_percentile(ranked, 99),
        )
    return result
