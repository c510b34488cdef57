"""Per-instance samples for the judges, read from the request log as load writes it.

Nothing flows backwards: load writes one row per request (``measure.requestlog``), and the gate
reads those rows, attributing each to the release and instance that answered (the
``X-Release`` / ``X-Instance`` headers). The reader keeps a file offset and only ever parses
whole new lines, so each poll costs the rows written since the last one; memory stays bounded
whatever the rate: per instance, two counters and a fixed latency histogram.

The histogram's bins are 2 % wide on a log scale (10 µs to 10 minutes), so a quantile read
from it is off by at most 2 % — well inside the 20 % a latency floor typically declares.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from cautious.files import LineFollower
from cautious.judges.sequential import ArrayLike, FloatArray, rank_bounds
from cautious.measure.requestlog import RequestLogError

__all__ = [
    "BIN_EDGES_MS",
    "QuantileBounds",
    "RequestLogTail",
    "Samples",
    "Tally",
    "bin_index",
    "quantile_bounds",
    "quantile_estimate",
]

_BIN_RATIO = 1.02
_LOWEST_MS = 0.01
_HIGHEST_MS = 600_000.0
_BINS = int(np.ceil(np.log(_HIGHEST_MS / _LOWEST_MS) / np.log(_BIN_RATIO)))
BIN_EDGES_MS: FloatArray = _LOWEST_MS * _BIN_RATIO ** np.arange(_BINS + 1, dtype=np.float64)
_READ_CHUNK = 1 << 20  # bytes per read: a poll never holds more than this of the file at once


def bin_index(latency_ms: ArrayLike) -> npt.NDArray[np.int64]:
    """The histogram bin of each latency (values outside the range go to the end bins)."""
    values = np.maximum(np.asarray(latency_ms, dtype=np.float64), _LOWEST_MS)
    index = np.floor(np.log(values / _LOWEST_MS) / np.log(_BIN_RATIO))
    return np.asarray(np.clip(index, 0, _BINS - 1), dtype=np.int64)


@dataclass(frozen=True)
class Samples:
    """What one side of a comparison (canary or baseline) answered: the judges' input.

    ``latency_counts`` is the histogram (bins :data:`BIN_EDGES_MS`) of the latencies of good
    answers; errors are judged by their own count, so a fast 500 cannot make a release look
    quick.
    """

    requests: int
    errors: int
    latency_counts: npt.NDArray[np.int64] = field(repr=False, compare=False)

    @classmethod
    def empty(cls) -> Samples:
        return cls(0, 0, np.zeros(_BINS, dtype=np.int64))

    @classmethod
    def of(cls, latencies_ms: Iterable[float], errors: int = 0) -> Samples:
        """Samples from raw latencies of good answers plus a number of errors (tests, sims)."""
        values = np.fromiter(latencies_ms, dtype=np.float64)
        counts = np.bincount(bin_index(values), minlength=_BINS).astype(np.int64)
        return cls(int(values.size) + errors, errors, counts)

    @property
    def good(self) -> int:
        return int(self.latency_counts.sum())

    def __add__(self, other: Samples) -> Samples:
        return Samples(
            self.requests + other.requests,
            self.errors + other.errors,
            self.latency_counts + other.latency_counts,
        )


@dataclass(frozen=True)
class QuantileBounds:
    """A quantile's estimate and its anytime-valid bounds, in ms (0 / inf: unbounded side)."""

    estimate: FloatArray
    lower: FloatArray
    upper: FloatArray


def quantile_bounds(
    cumulative: npt.NDArray[np.int64], level: float, alpha: ArrayLike, first_bin: int = 0
) -> QuantileBounds:
    """Bounds of the ``level`` quantile from cumulative histogram counts (last axis = bins).

    The bounds are the outer edges of the bins holding the order statistics that
    :func:`~cautious.judges.sequential.rank_bounds` names, so binning only widens them.
    ``first_bin``: the histogram is a window of the bins starting there (simulations keep only
    the bins their latencies can reach).
    """
    edges = BIN_EDGES_MS[first_bin : first_bin + cumulative.shape[-1] + 1]
    total = cumulative[..., -1]
    lo_rank, hi_rank = rank_bounds(total, level, alpha)
    lower = np.where(lo_rank >= 1, edges[_bin_of(cumulative, lo_rank)], 0.0)
    upper = np.where(hi_rank <= total, edges[_bin_of(cumulative, hi_rank) + 1], np.inf)
    return QuantileBounds(
        quantile_estimate(cumulative, level, first_bin),
        np.asarray(lower, dtype=np.float64),
        np.asarray(upper, dtype=np.float64),
    )


def quantile_estimate(
    cumulative: npt.NDArray[np.int64], level: float, first_bin: int = 0
) -> FloatArray:
    """The ``level`` quantile read from cumulative histogram counts (NaN with no samples)."""
    edges = BIN_EDGES_MS[first_bin : first_bin + cumulative.shape[-1] + 1]
    total = cumulative[..., -1]
    mid = _bin_of(cumulative, np.maximum(np.ceil(total * level), 1))
    estimate = np.where(total > 0, np.sqrt(edges[mid] * edges[mid + 1]), np.nan)
    return np.asarray(estimate, dtype=np.float64)


def _bin_of(
    cumulative: npt.NDArray[np.int64], rank: npt.NDArray[np.int64] | FloatArray
) -> npt.NDArray[np.int64]:
    """The bin holding the rank-th smallest value: the first whose cumulative count reaches it."""
    index = (cumulative < np.asarray(rank)[..., None]).sum(axis=-1)
    return np.asarray(np.minimum(index, cumulative.shape[-1] - 1), dtype=np.int64)


class Tally:
    """A running count for one instance: requests, errors, the latency histogram."""

    def __init__(self) -> None:
        self.requests = 0
        self.errors = 0
        self.counts = np.zeros(_BINS, dtype=np.int64)

    def add(self, latencies_ms: FloatArray, bad: npt.NDArray[np.bool_]) -> None:
        """Count a batch of answers; only good answers enter the latency histogram."""
        self.requests += int(bad.size)
        self.errors += int(bad.sum())
        np.add.at(self.counts, bin_index(latencies_ms[~bad]), 1)

    def snapshot(self) -> Samples:
        return Samples(self.requests, self.errors, self.counts.copy())


class _Follower:
    """One growing CSV file: hands out each whole row once, header first."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lines = LineFollower(path, max_bytes=_READ_CHUNK, hold_back=_closed_quotes)
        self.columns: dict[str, int] | None = None

    def rows(self) -> list[list[str]]:
        try:
            whole = self._lines.new_bytes()  # nothing before load starts writing
        except OSError as exc:
            raise RequestLogError(f"cannot read the request log {self.path}: {exc}") from None
        rows = list(csv.reader(io.StringIO(whole.decode("utf-8"), newline="")))
        if rows and self.columns is None:
            header = rows.pop(0)
            missing = [name for name in _COLUMNS if name not in header]
            if missing:
                raise RequestLogError(f"{self.path}: header lacks {', '.join(missing)}")
            self.columns = {name: header.index(name) for name in _COLUMNS}
        return rows


def _closed_quotes(whole: bytes) -> bytes:
    """Whole rows only: a quoted error text with a newline is not finished yet."""
    while whole.count(b'"') % 2:
        whole = whole[: whole.rfind(b"\n", 0, len(whole) - 1) + 1]
    return whole


_COLUMNS = ("start", "latency_ms", "status", "error", "instance", "release")


class RequestLogTail:
    """Follows request logs while they grow, tallying answers per instance since ``since``.

    ``paths``: one log, or several written side by side (one per load-generator process). Call
    :meth:`poll` to read what was appended; rows without an instance (connection errors,
    answers from the load balancer itself) cannot be attributed and are only counted in
    :attr:`unattributed`. A row that is still being written (no newline yet) waits for the next
    poll.
    """

    def __init__(
        self,
        paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
        since: float = 0.0,
    ) -> None:
        many = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
        self._followers = [_Follower(Path(path)) for path in many]
        self.since = since
        self.unattributed = 0
        self._tallies: dict[str, Tally] = {}
        self._releases: dict[str, str] = {}

    def poll(self) -> int:
        """Read the rows appended since the last poll; returns how many were counted."""
        counted = 0
        for follower in self._followers:
            rows = follower.rows()
            if rows and follower.columns is not None:
                counted += self._tally(follower, rows)
        return counted

    def _tally(self, follower: _Follower, rows: list[list[str]]) -> int:
        assert follower.columns is not None
        col = follower.columns
        try:
            kept = [row for row in rows if row and float(row[col["start"]]) >= self.since]
            latency = np.array([float(row[col["latency_ms"]]) for row in kept], dtype=np.float64)
            status = np.array([int(row[col["status"]]) for row in kept], dtype=np.int64)
        except (ValueError, IndexError) as exc:
            raise RequestLogError(
                f"{follower.path}: a row is not a request log row ({exc})"
            ) from None
        errored = np.array([bool(row[col["error"]]) for row in kept], dtype=np.bool_)
        bad = errored | (status < 200) | (status >= 400)
        instances = np.array([row[col["instance"]] for row in kept], dtype=object)
        for name in set(instances.tolist()):
            mine = instances == name
            if not name:
                self.unattributed += int(mine.sum())
                continue
            self._tallies.setdefault(name, Tally()).add(latency[mine], bad[mine])
        for row in kept:
            if row[col["instance"]]:
                self._releases[row[col["instance"]]] = row[col["release"]]
        return len(kept)

    def samples(self, instances: Iterable[str]) -> Samples:
        """The answers of ``instances`` together (e.g. every baseline instance)."""
        total = Samples.empty()
        for name in instances:
            if name in self._tallies:
                total = total + self._tallies[name].snapshot()
        return total

    def by_instance(self) -> dict[str, Samples]:
        """Each instance's answers so far."""
        return {name: tally.snapshot() for name, tally in sorted(self._tallies.items())}

    def release_of(self, instance: str) -> str | None:
        """The release the instance last answered as (its ``X-Release`` header)."""
        return self._releases.get(instance)
