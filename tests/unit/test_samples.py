"""Per-instance samples: a bounded histogram of latencies, read from the request log as it grows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from cautious.judges.samples import (
    BIN_EDGES_MS,
    RequestLogTail,
    Samples,
    bin_index,
    quantile_bounds,
    quantile_estimate,
)
from cautious.measure.requestlog import RequestLogError, RequestLogWriter, RequestRecord


def test_latency_bins_are_two_percent_wide_and_cover_every_value() -> None:
    assert np.allclose(BIN_EDGES_MS[1:] / BIN_EDGES_MS[:-1], 1.02)
    index = bin_index(np.array([0.0, 1.0, 1e9]))
    assert index[0] == 0
    assert index[-1] == len(BIN_EDGES_MS) - 2
    assert BIN_EDGES_MS[index[1]] <= 1.0 < BIN_EDGES_MS[index[1] + 1]


def test_a_quantile_read_from_the_histogram_is_within_two_percent() -> None:
    latencies = np.exp(np.random.default_rng(1).normal(np.log(40), 0.5, 50_000))
    cumulative = np.cumsum(Samples.of(latencies).latency_counts)
    assert float(quantile_estimate(cumulative, 0.99)) == pytest.approx(
        np.quantile(latencies, 0.99), rel=0.02
    )


def test_quantile_bounds_hold_the_true_quantile() -> None:
    rng = np.random.default_rng(2)
    true_p99 = 40 * np.exp(0.5 * 2.326)
    cumulative = np.cumsum(
        Samples.of(40 * np.exp(0.5 * rng.standard_normal(20_000))).latency_counts
    )
    bounds = quantile_bounds(cumulative, 0.99, 0.01)
    assert float(bounds.lower) < true_p99 < float(bounds.upper)


def test_samples_add_up_and_count_errors_apart_from_latencies() -> None:
    total = Samples.of([10.0, 20.0], errors=1) + Samples.of([30.0])
    assert (total.requests, total.errors, total.good) == (4, 1, 3)


def _log(path: Path, rows: list[RequestRecord]) -> None:
    with RequestLogWriter(path) as writer:
        for row in rows:
            writer.write(row)


def test_the_tail_tallies_each_instance_since_the_given_time(tmp_path: Path) -> None:
    path = tmp_path / "requests.csv"
    _log(
        path,
        [
            RequestRecord(9.0, 5.0, 200, instance="app-1", release="v1"),  # before `since`
            RequestRecord(10.0, 5.0, 200, instance="app-1", release="v1"),
            RequestRecord(10.1, 7.0, 500, instance="app-1", release="v1"),
            RequestRecord(10.2, 9.0, 200, instance="app-4", release="v2"),
            RequestRecord(10.3, 2000.0, 0, error="timed out"),
        ],
    )
    tail = RequestLogTail(path, since=10.0)
    assert tail.poll() == 4
    baseline, canary = tail.samples(["app-1"]), tail.samples(["app-4"])
    assert (baseline.requests, baseline.errors, baseline.good) == (2, 1, 1)
    assert (canary.requests, canary.errors) == (1, 0)
    assert tail.unattributed == 1
    assert tail.release_of("app-4") == "v2"
    assert tail.poll() == 0  # nothing new: nothing read twice


def test_the_tail_waits_for_a_row_that_is_still_being_written(tmp_path: Path) -> None:
    path = tmp_path / "requests.csv"
    _log(path, [RequestRecord(1.0, 5.0, 200, instance="a", release="v1")])
    with path.open("a", encoding="utf-8") as file:
        file.write('2.0,6.0,500,GET,/,"refused,\nsecond line')
    tail = RequestLogTail(path)
    assert tail.poll() == 1
    with path.open("a", encoding="utf-8") as file:
        file.write('",a,v1\n')
    assert tail.poll() == 1
    assert tail.samples(["a"]).errors == 1


def test_a_missing_log_is_no_data_yet_and_a_foreign_one_is_refused(tmp_path: Path) -> None:
    assert RequestLogTail(tmp_path / "absent.csv").poll() == 0
    foreign = tmp_path / "foreign.csv"
    foreign.write_text("when,what\n1,2\n", encoding="utf-8")
    with pytest.raises(RequestLogError, match="header lacks"):
        RequestLogTail(foreign).poll()


def test_the_tail_follows_several_logs_written_side_by_side(tmp_path: Path) -> None:
    first, second = tmp_path / "requests-worker-1.csv", tmp_path / "requests-worker-2.csv"
    _log(first, [RequestRecord(1.0, 5.0, 200, instance="a", release="v1")])
    _log(second, [RequestRecord(1.5, 6.0, 500, instance="a", release="v1")])
    tail = RequestLogTail([first, second])
    assert tail.poll() == 2
    assert (tail.samples(["a"]).requests, tail.samples(["a"]).errors) == (2, 1)
