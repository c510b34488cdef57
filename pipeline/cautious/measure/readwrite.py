"""Availability in read-only mode: reads and writes counted apart, refusals apart from failures.

While a switch runs in read-only mode, the load balancer answers writes itself with 503 and
``Retry-After``, naming itself ``X-Instance: read-only`` (:data:`READ_ONLY_INSTANCE`), and keeps
reads flowing to the old release. Counted as plain availability those refusals would look like
an outage; counted here they are what the mode promised, and the figures that matter are:

- reads: every read served (``read_success_ratio``);
- writes refused by design, and for how long (``write_refused_s``: the longest run of
  consecutive seconds in which a write was refused) — only inside the read-only window;
- writes that failed any other way (or were refused outside the window): unexpected failures.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

from cautious.measure.requestlog import RequestRecord
from cautious.rollout.plan import READ_ONLY_OFF_UNDO
from cautious.rollout.records import StepRecord

__all__ = [
    "READ_METHODS",
    "READ_ONLY_INSTANCE",
    "ReadWriteStats",
    "read_only_window",
    "read_write_stats",
]

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
READ_ONLY_INSTANCE = "read-only"
_REFUSED_STATUS = 503


@dataclass(frozen=True)
class ReadWriteStats:
    """Reads and writes of one measured run, with the refusals of read-only mode apart."""

    reads: int
    reads_failed: int
    writes: int
    writes_acknowledged: int
    writes_refused: int
    writes_failed: int  # unexpected: not refused by design inside the window
    write_refused_s: int
    refused_first: float | None
    refused_last: float | None

    @property
    def read_success_ratio(self) -> float | None:
        return (self.reads - self.reads_failed) / self.reads if self.reads else None

    def context(self) -> dict[str, int | float | None]:
        """The figures as a report's context entries (``read_write.reads`` …)."""
        figures = {**asdict(self), "read_success_ratio": self.read_success_ratio}
        return {f"read_write.{name}": value for name, value in figures.items()}


def read_only_window(steps: Sequence[StepRecord]) -> tuple[float, float] | None:
    """From read-only mode on to off (or to the rollback's switch-off, or the last step)."""
    start = end = None
    for step in steps:
        switched_on = step.kind == "readonly" and step.facts.get("read_only") is True
        if switched_on and start is None:
            start = step.started
        elif start is not None and (
            (step.kind == "readonly" and step.facts.get("read_only") is False)
            or (step.phase == "rollback" and step.name == READ_ONLY_OFF_UNDO)
        ):
            end = step.ended or step.started
    if start is None:
        return None
    last = max((step.ended or step.started) for step in steps)
    return start, end if end is not None else last


def read_write_stats(
    records: Iterable[RequestRecord], window: tuple[float, float] | None
) -> ReadWriteStats:
    """Split ``records``; a refusal counts as by design only inside ``window`` (start, end)."""
    reads = reads_failed = writes = acknowledged = refused = failed = 0
    refused_seconds: set[int] = set()
    refused_times: list[float] = []
    for record in records:
        if record.method.upper() in READ_METHODS:
            reads += 1
            reads_failed += not record.ok
            continue
        writes += 1
        if record.ok:
            acknowledged += 1
        elif _refused_by_design(record, window):
            refused += 1
            refused_seconds.add(math.floor(record.start))
            refused_times.append(record.start)
        else:
            failed += 1
    return ReadWriteStats(
        reads=reads,
        reads_failed=reads_failed,
        writes=writes,
        writes_acknowledged=acknowledged,
        writes_refused=refused,
        writes_failed=failed,
        write_refused_s=_longest_run(refused_seconds),
        refused_first=min(refused_times, default=None),
        refused_last=max(refused_times, default=None),
    )


def _refused_by_design(record: RequestRecord, window: tuple[float, float] | None) -> bool:
    if record.status != _REFUSED_STATUS or record.instance != READ_ONLY_INSTANCE:
        return False
    return window is not None and window[0] <= record.start <= window[1]


def _longest_run(seconds: set[int]) -> int:
    """The longest run of consecutive seconds in ``seconds``."""
    longest = 0
    for second in seconds:
        if second - 1 in seconds:
            continue  # not the start of a run
        length = 1
        while second + length in seconds:
            length += 1
        longest = max(longest, length)
    return longest
