"""Availability measured from a request log, with one set of definitions for everyone.

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

The log is read in batches into compact columns (about 33 bytes per request), and every figure
is computed with numpy over those columns: exact, with no per-request Python object, so a
million requests take seconds and well under 500 MB.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from itertools import chain
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from cautious.measure.requestlog import (
    BoolArray,
    FloatArray,
    IndexArray,
    Outcomes,
    RequestRecord,
    iter_outcomes,
    outcomes_of,
)

__all__ = [
    "PHASES",
    "UNATTRIBUTED",
    "Availability",
    "Breakdown",
    "Phase",
    "SecondRow",
    "WindowStats",
    "availability_of_logs",
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
    """Measure availability from request records (a log read earlier, or made in memory).

    ``target_rate`` (requests/s) turns a shortfall into missing requests; ``slo`` (a success
    ratio such as 0.999) sizes the error budget. With ``rollout_start`` (and ``rollout_end``,
    absent while a rollout never finished), seconds are split into phases: a second that
    overlaps the rollout at all is ``during`` it, so its errors are never blamed on the
    steady state.
    """
    _check(target_rate, slo, rollout_start, rollout_end)
    return _measure(outcomes_of(records), target_rate, slo, rollout_start, rollout_end)


def availability_of_logs(
    paths: Iterable[str | os.PathLike[str]],
    *,
    target_rate: float | None = None,
    slo: float | None = None,
    rollout_start: float | None = None,
    rollout_end: float | None = None,
) -> Availability:
    """Measure availability straight from request log files, streaming.

    Several logs (one per load-generator worker) are one measurement: a request belongs to
    its second whichever file holds it. Arguments as for :func:`compute_availability`;
    a missing or malformed log is a :class:`~cautious.measure.requestlog.RequestLogError`.
    """
    _check(target_rate, slo, rollout_start, rollout_end)
    batches = chain.from_iterable(iter_outcomes(path) for path in paths)
    return _measure(batches, target_rate, slo, rollout_start, rollout_end)


def _check(
    target_rate: float | None,
    slo: float | None,
    rollout_start: float | None,
    rollout_end: float | None,
) -> None:
    if target_rate is not None and target_rate <= 0:
        raise ValueError(f"target_rate must be positive, not {target_rate}")
    if slo is not None and not 0 <= slo <= 1:
        raise ValueError(f"slo must be a ratio between 0 and 1, not {slo}")
    if rollout_start is not None and rollout_end is not None and rollout_end < rollout_start:
        raise ValueError(f"rollout_end {rollout_end} is before rollout_start {rollout_start}")


@dataclass(frozen=True)
class _Columns:
    """Every request of the measurement as columns; names are breakdown keys."""

    second: npt.NDArray[np.int64]
    latency_ms: FloatArray
    ok: BoolArray
    instance: IndexArray
    instance_keys: dict[str, int]
    release: IndexArray
    release_keys: dict[str, int]

    def measured(self, first: int, end: int) -> _Columns:
        """The requests that started in seconds ``first`` .. ``end - 1``, fastest first.

        Sorting once by latency ranks every group at the same time: a stable sort by group
        then keeps each group's latencies in order (:meth:`_Groups.of`).
        """
        keep = np.flatnonzero((self.second >= first) & (self.second < end))
        order = keep[np.argsort(self.latency_ms[keep])]
        return _Columns(
            self.second[order],
            self.latency_ms[order],
            self.ok[order],
            self.instance[order],
            self.instance_keys,
            self.release[order],
            self.release_keys,
        )


def _gather(batches: Iterable[Outcomes]) -> _Columns:
    """Concatenate batches, giving instance and release names one numbering across them."""
    parts: list[Outcomes] = []
    instance_keys: dict[str, int] = {}
    release_keys: dict[str, int] = {}
    instances: list[IndexArray] = []
    releases: list[IndexArray] = []
    for batch in batches:
        parts.append(batch)
        instances.append(_renumber(batch.instance, batch.instance_names, instance_keys))
        releases.append(_renumber(batch.release, batch.release_names, release_keys))

    def joined(arrays: Sequence[npt.NDArray[Any]], dtype: type[np.generic]) -> Any:
        return np.concatenate(arrays) if arrays else np.empty(0, dtype=dtype)

    return _Columns(
        np.floor(joined([part.start for part in parts], np.float64)).astype(np.int64),
        joined([part.latency_ms for part in parts], np.float64),
        joined([part.ok for part in parts], np.bool_),
        joined(instances, np.intp),
        instance_keys,
        joined(releases, np.intp),
        release_keys,
    )


def _renumber(codes: IndexArray, names: Sequence[str], keys: dict[str, int]) -> IndexArray:
    """A batch's name indices as indices into ``keys`` (no name counts as UNATTRIBUTED)."""
    table = [keys.setdefault(name or UNATTRIBUTED, len(keys)) for name in names]
    return np.asarray(table, dtype=np.intp)[codes] if table else codes


@dataclass(frozen=True)
class _Groups:
    """Requests grouped by an integer key, latencies ranked within each group."""

    sent: npt.NDArray[np.int64]
    good: npt.NDArray[np.int64]
    ranked: FloatArray  # latencies sorted by (group, latency)
    offsets: npt.NDArray[np.int64]  # where each group starts in ``ranked``

    @classmethod
    def of(cls, group: IndexArray, columns: _Columns, size: int) -> _Groups:
        """``group`` (values below ``size``) per request of ``columns``, in latency order."""
        sent = np.bincount(group, minlength=size).astype(np.int64)
        good = np.bincount(group[columns.ok], minlength=size).astype(np.int64)
        ranked = columns.latency_ms[np.argsort(group, kind="stable")]
        return cls(sent, good, ranked, np.cumsum(sent) - sent)

    def percentile(self, percent: int) -> list[float | None]:
        """Each group's nearest-rank percentile (:func:`_percentile`), None for an empty one."""
        if not len(self.ranked):
            return [None] * len(self.sent)
        rank = -(-percent * self.sent // 100)
        index = np.minimum(self.offsets + np.maximum(rank, 1) - 1, len(self.ranked) - 1)
        values: list[float] = self.ranked[index].tolist()
        return [value if n else None for value, n in zip(values, self.sent.tolist(), strict=True)]


def _measure(
    batches: Iterable[Outcomes],
    target_rate: float | None,
    slo: float | None,
    rollout_start: float | None,
    rollout_end: float | None,
) -> Availability:
    every = _gather(batches)
    # The first and last seconds are partial: the measured ones lie strictly between them.
    first, end = (0, 0)
    if len(every.second):
        first, end = int(every.second.min()) + 1, int(every.second.max())
    seconds = max(0, end - first)
    kept = every.measured(first, end)
    per_second = _Groups.of(kept.second - first, kept, seconds)
    p50, p95, p99 = (per_second.percentile(percent) for percent in (50, 95, 99))
    sent_list: list[int] = per_second.sent.tolist()
    good_list: list[int] = per_second.good.tolist()
    rows = [
        SecondRow(
            t=first + i,
            sent=sent,
            good=good,
            failed=sent - good,
            missing=_missing(target_rate, sent),
            p50_ms=p50[i],
            p95_ms=p95[i],
            p99_ms=p99[i],
        )
        for i, (sent, good) in enumerate(zip(sent_list, good_list, strict=True))
    ]
    overall = _window(rows, kept.latency_ms, slo)
    phases: dict[str, WindowStats] = {}
    if rollout_start is not None:
        phase_of = [_phase_of(row.t, rollout_start, rollout_end) for row in rows]
        for phase in PHASES:
            chosen = np.array([name == phase for name in phase_of], dtype=np.bool_)
            in_phase = chosen[kept.second - first] if seconds else chosen
            phases[phase] = _window(
                [row for row, name in zip(rows, phase_of, strict=True) if name == phase],
                kept.latency_ms[in_phase],
                slo,
            )
    return Availability(
        **asdict(overall),
        target_rate=target_rate,
        slo=slo,
        per_second=tuple(rows),
        phases=phases,
        per_instance=_breakdown(kept.instance, kept.instance_keys, kept),
        per_release=_breakdown(kept.release, kept.release_keys, kept),
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


def _percentile(ranked: FloatArray, percent: int) -> float | None:
    """Nearest rank: the smallest value with at least ``percent`` % of values at or below it."""
    if not len(ranked):
        return None
    rank = -(-percent * len(ranked) // 100)  # ceil, in integers so 99 % of 100 is exactly 99
    return float(ranked[rank - 1])


def _phase_of(t: int, rollout_start: float, rollout_end: float | None) -> Phase:
    if t + 1 <= rollout_start:
        return "before"
    if rollout_end is not None and t >= rollout_end:
        return "after"
    return "during"


def _window(rows: Sequence[SecondRow], ranked: FloatArray, slo: float | None) -> WindowStats:
    """Figures over whole seconds; ``ranked``: the sorted latencies of their requests."""
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


def _breakdown(group: IndexArray, keys: dict[str, int], kept: _Columns) -> dict[str, Breakdown]:
    """Per instance (or release): the requests of the measured seconds that it answered."""
    groups = _Groups.of(group, kept, len(keys))
    p50, p99 = groups.percentile(50), groups.percentile(99)
    sent: list[int] = groups.sent.tolist()
    good: list[int] = groups.good.tolist()
    result: dict[str, Breakdown] = {}
    for key in sorted(keys):
        i = keys[key]
        if sent[i]:
            result[key] = Breakdown(
                sent=sent[i],
                good=good[i],
                failed=sent[i] - good[i],
                success_ratio=good[i] / sent[i],
                p50_ms=p50[i],
                p99_ms=p99[i],
            )
    return result
