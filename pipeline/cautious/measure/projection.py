"""Downtime projection: what a deploy habit costs per month and per year.

"A second of downtime per deploy" sounds like nothing until it is multiplied by the deploys of a
year. Each measured deploy in the journal gives its error seconds, its failed requests (failed
plus missing, at the load it ran under) and its rollout time. Treating deploys as independent
draws from what was measured, ``D`` deploys in a period cost on average ``D × mean``, and their
total falls inside the prediction interval

    D × mean ± t(1 − α/2, n − 1) × s × √(D²/n + D)

where ``n`` is the number of measured deploys and ``s`` the standard deviation of their values:
``D²/n`` is the uncertainty of the mean itself, ``D`` the deploy-to-deploy spread of the total.
With a single measured deploy there is no spread to go on, and no interval.

The error budget is request-based, like the availability figures: a period at rate ``r`` allows
``(1 − SLO) × r × period`` failed requests. A deploy's failed requests divided by its measured
rate are the seconds of traffic it lost, so the budget used is independent of the rate the
sandbox ran at: lost seconds / ((1 − SLO) × period seconds).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from scipy.stats import t as student_t

from cautious.rollout.journal import Journal

__all__ = [
    "CONFIDENCE",
    "MEASURED_NOTE",
    "PERIOD_DAYS",
    "DeployFigures",
    "Estimate",
    "PeriodProjection",
    "Projection",
    "figures_from_journal",
    "project",
]

CONFIDENCE = 0.95
MEASURED_NOTE = "measured"  # the journal record a measured deploy leaves
PERIOD_DAYS = {"month": 365 / 12, "year": 365.0}
_SECONDS_PER_DAY = 86_400


@dataclass(frozen=True)
class DeployFigures:
    """What one measured deploy cost, as its measurement was journaled.

    ``failed`` counts failed and missing requests, ``requests`` sent and missing ones, over the
    ``window_s`` seconds the load ran; ``error_s`` is the number of seconds with errors.
    """

    rollout_id: str
    error_s: float
    failed: int
    requests: int
    window_s: float
    rollout_s: float

    @property
    def lost_s(self) -> float:
        """Seconds of traffic lost: failed requests at the rate this deploy was measured at."""
        if self.requests <= 0 or self.window_s <= 0:
            return 0.0
        return self.failed * self.window_s / self.requests

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DeployFigures:
        return cls(
            rollout_id=str(data["rollout_id"]),
            error_s=float(data["error_s"]),
            failed=int(data["failed"]),
            requests=int(data["requests"]),
            window_s=float(data["window_s"]),
            rollout_s=float(data["rollout_s"]),
        )


@dataclass(frozen=True)
class Estimate:
    """An expected total and, with two or more measured deploys, its prediction interval."""

    expected: float
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True)
class PeriodProjection:
    """A period's cost: downtime, failed requests, error budget used, time spent deploying."""

    period: str
    deploys: float
    downtime_s: Estimate
    failed_requests: Estimate
    budget_used: Estimate | None  # a fraction of the period's budget; None when SLO = 1
    rollout_s: Estimate


@dataclass(frozen=True)
class Projection:
    """The projection of ``deploys_per_day`` from ``measured`` deploys."""

    deploys_per_day: float
    measured: int
    slo: float | None
    confidence: float
    periods: tuple[PeriodProjection, ...]

    def period(self, name: str) -> PeriodProjection:
        return next(item for item in self.periods if item.period == name)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def figures_from_journal(journal: Journal) -> list[DeployFigures]:
    """Every measured deploy the journal holds, oldest first."""
    return [DeployFigures.from_dict(note) for note in journal.notes(MEASURED_NOTE)]


def project(
    figures: Sequence[DeployFigures],
    deploys_per_day: float,
    *,
    slo: float | None,
    confidence: float = CONFIDENCE,
) -> Projection:
    """Project ``figures`` (at least one measured deploy) onto a month and a year."""
    if not figures:
        raise ValueError("no measured deploys to project from")
    if deploys_per_day <= 0:
        raise ValueError(f"deploys per day must be positive, not {deploys_per_day}")
    periods = []
    for period, days in PERIOD_DAYS.items():
        deploys = deploys_per_day * days
        budget_s = (1 - slo) * days * _SECONDS_PER_DAY if slo is not None and slo < 1 else None
        lost = _total([item.lost_s for item in figures], deploys, confidence)
        periods.append(
            PeriodProjection(
                period=period,
                deploys=deploys,
                downtime_s=_total([item.error_s for item in figures], deploys, confidence),
                failed_requests=_total([item.failed for item in figures], deploys, confidence),
                budget_used=None if budget_s is None else _scaled(lost, 1 / budget_s),
                rollout_s=_total([item.rollout_s for item in figures], deploys, confidence),
            )
        )
    return Projection(deploys_per_day, len(figures), slo, confidence, tuple(periods))


def _total(values: Sequence[float], deploys: float, confidence: float) -> Estimate:
    """The expected sum of ``deploys`` draws like ``values``, with its prediction interval."""
    mean = statistics.fmean(values)
    expected = deploys * mean
    if len(values) < 2:
        return Estimate(expected)
    spread = statistics.stdev(values)
    quantile = float(student_t.ppf(0.5 + confidence / 2, len(values) - 1))
    half = quantile * spread * math.sqrt(deploys**2 / len(values) + deploys)
    return Estimate(expected, max(0.0, expected - half), expected + half)


def _scaled(estimate: Estimate, factor: float) -> Estimate:
    def scale(value: float | None) -> float | None:
        return None if value is None else value * factor

    return Estimate(estimate.expected * factor, scale(estimate.low), scale(estimate.high))
