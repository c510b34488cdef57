"""Availability follows its documented definitions to the request, and its totals add up."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
from cautious.measure.availability import (
    UNATTRIBUTED,
    Availability,
    availability_of_logs,
    compute_availability,
)
from cautious.measure.requestlog import RequestRecord, write_request_log

T = 1_700_000_000  # a whole epoch second
RATE = 10
OUTAGE = (9, 10, 11)  # seconds after T
STRAY_500 = 15


def outage_log() -> list[RequestRecord]:
    """20 full seconds at 10 req/s (T+1 .. T+20) between two partial seconds.

    In the 3-second outage the closed-loop generator sends only 4 requests a second: 2 are
    connection errors (no instance) and 2 are answered. At T+15 instance b answers one 500.
    Good requests alternate between instances a and b.
    """
    records = [
        RequestRecord(T + 0.5, 5.0, 200, instance="a", release="v1"),
        RequestRecord(T + 0.9, 2000.0, 0, error="ConnectionError"),
    ]
    for second in range(1, 21):
        start = T + second
        if second in OUTAGE:
            records += [
                RequestRecord(start + 0.05, 2000.0, 0, error="ConnectionError"),
                RequestRecord(start + 0.30, 2000.0, 0, error="ConnectionError"),
                RequestRecord(start + 0.55, 40.0, 200, instance="a", release="v1"),
                RequestRecord(start + 0.80, 41.0, 200, instance="b", release="v2"),
            ]
            continue
        for i in range(RATE):
            instance, release = ("a", "v1") if i % 2 == 0 else ("b", "v2")
            status = 500 if second == STRAY_500 and i == 1 else 200
            records.append(
                RequestRecord(
                    start + i / RATE, 10.0 + i, status, instance=instance, release=release
                )
            )
    records += [
        RequestRecord(T + 21.1, 5.0, 200, instance="a", release="v1"),
        RequestRecord(T + 21.2, 2000.0, 0, error="ConnectionError"),
    ]
    return records


@pytest.fixture
def measured() -> Availability:
    return compute_availability(
        outage_log(), target_rate=RATE, slo=0.99, rollout_start=T + 8.5, rollout_end=T + 12.2
    )


def test_the_partial_first_and_last_seconds_are_dropped(measured: Availability) -> None:
    assert (measured.start, measured.end, measured.seconds) == (T + 1, T + 21, 20)
    assert [row.t for row in measured.per_second] == list(range(T + 1, T + 21))


def test_a_shortfall_against_the_target_rate_counts_as_missing(measured: Availability) -> None:
    outage_rows = [row for row in measured.per_second if row.t - T in OUTAGE]
    assert [(r.sent, r.good, r.failed, r.missing) for r in outage_rows] == [(4, 2, 2, 6)] * 3


def test_totals_count_every_full_second_exactly(measured: Availability) -> None:
    assert measured.sent == 17 * 10 + 3 * 4
    assert measured.good == 170 - 1 + 3 * 2
    assert measured.failed == 3 * 2 + 1
    assert measured.missing == 3 * 6


def test_totals_equal_the_sum_of_the_per_second_rows(measured: Availability) -> None:
    for field in ("sent", "good", "failed", "missing"):
        assert getattr(measured, field) == sum(getattr(r, field) for r in measured.per_second)
    assert measured.seconds_with_errors == sum(1 for r in measured.per_second if r.errors)


def test_the_success_ratio_counts_missing_requests_as_not_good(measured: Availability) -> None:
    assert measured.success_ratio == 175 / 200


def test_the_three_second_outage_is_the_longest_error_window(measured: Availability) -> None:
    assert measured.longest_error_window_s == 3
    assert measured.seconds_with_errors == 4


def test_the_error_budget_used_is_failures_over_what_the_slo_allows(
    measured: Availability,
) -> None:
    # 25 failed or missing; a 99 % SLO over 200 requests allows 2.
    assert measured.error_budget_used == pytest.approx(12.5)


def test_latency_percentiles_are_nearest_rank_over_every_request_sent(
    measured: Availability,
) -> None:
    # 182 requests; the 6 slowest are the 2-second connection errors.
    # p99 is rank ceil(0.99 * 182) = 181, p95 rank 173 and p50 rank 91 of the sorted latencies.
    latencies = sorted(r.latency_ms for r in outage_log() if T + 1 <= r.start < T + 21)
    assert measured.p99_ms == 2000.0
    assert measured.p95_ms == latencies[172]
    assert measured.p50_ms == latencies[90]
    first = measured.per_second[0]
    assert (first.p50_ms, first.p95_ms, first.p99_ms) == (14.0, 19.0, 19.0)


def test_phases_split_at_the_rollout_and_add_up(measured: Availability) -> None:
    before, during, after = (measured.phases[p] for p in ("before", "during", "after"))
    assert (before.start, before.end) == (T + 1, T + 8)
    assert (during.start, during.end) == (T + 8, T + 13)  # every second it touches
    assert (after.start, after.end) == (T + 13, T + 21)
    assert (before.seconds_with_errors, during.longest_error_window_s) == (0, 3)
    assert (after.seconds_with_errors, after.failed) == (1, 1)
    assert before.success_ratio == 1.0
    assert during.success_ratio == (20 + 6) / 50
    for field in ("seconds", "sent", "good", "failed", "missing"):
        assert sum(getattr(p, field) for p in (before, during, after)) == getattr(measured, field)


def test_without_a_rollout_there_are_no_phases() -> None:
    assert compute_availability(outage_log(), target_rate=RATE).phases == {}


def test_a_rollout_still_running_at_the_end_lasts_to_the_end() -> None:
    phases = compute_availability(outage_log(), rollout_start=T + 15.0).phases
    assert phases["during"].seconds == 6
    assert phases["after"].seconds == 0
    assert phases["after"].success_ratio is None


def test_the_per_instance_breakdown_attributes_every_sent_request(
    measured: Availability,
) -> None:
    by_instance = {name: (b.sent, b.good, b.failed) for name, b in measured.per_instance.items()}
    assert by_instance == {"a": (88, 88, 0), "b": (88, 87, 1), UNATTRIBUTED: (6, 0, 6)}
    assert measured.per_instance[UNATTRIBUTED].p99_ms == 2000.0
    assert measured.per_instance["b"].success_ratio == 87 / 88


def test_the_per_release_breakdown_uses_the_release_header(measured: Availability) -> None:
    assert {name: b.sent for name, b in measured.per_release.items()} == {
        "v1": 88,
        "v2": 88,
        UNATTRIBUTED: 6,
    }


def test_without_a_target_rate_nothing_is_missing() -> None:
    measured = compute_availability(outage_log())
    assert measured.missing == 0
    assert measured.success_ratio == 175 / 182
    assert measured.longest_error_window_s == 3  # the connection errors are still failures
    assert measured.error_budget_used is None


def test_a_second_with_no_request_at_all_is_an_outage_second() -> None:
    records = [RequestRecord(T + s + 0.5, 1.0, 200) for s in (0, 1, 2, 4, 5)]
    measured = compute_availability(records, target_rate=1)
    assert [(r.t - T, r.sent, r.missing) for r in measured.per_second] == [
        (1, 1, 0),
        (2, 1, 0),
        (3, 0, 1),
        (4, 1, 0),
    ]
    assert measured.per_second[2].p99_ms is None
    assert measured.longest_error_window_s == 1


def test_a_fractional_target_rate_counts_only_whole_missing_requests() -> None:
    records = [RequestRecord(T + s + 0.1 * i, 1.0, 200) for s in range(4) for i in range(2)]
    assert compute_availability(records, target_rate=2.5).missing == 0
    assert compute_availability(records, target_rate=5.5).missing == 6  # 3.5 → 3, twice


def test_pacing_jitter_across_a_second_boundary_is_not_missing() -> None:
    counts = [100, 101, 99, 100, 98, 102, 100]
    records = [
        RequestRecord(T + s + i / (n + 1), 1.0, 200) for s, n in enumerate(counts) for i in range(n)
    ]
    measured = compute_availability(records, target_rate=100)
    assert measured.missing == 0
    assert measured.success_ratio == 1.0


def test_a_shortfall_beyond_the_jitter_slack_is_missing() -> None:
    counts = [100, 100, 90, 100, 100]
    records = [
        RequestRecord(T + s + i / (n + 1), 1.0, 200) for s, n in enumerate(counts) for i in range(n)
    ]
    assert compute_availability(records, target_rate=100).missing == 10


def test_an_empty_log_measures_nothing() -> None:
    measured = compute_availability([], target_rate=RATE, slo=0.999)
    assert (measured.seconds, measured.sent, measured.missing) == (0, 0, 0)
    assert measured.success_ratio is None
    assert measured.p99_ms is None
    assert measured.per_instance == {}


def test_a_log_within_two_seconds_has_no_full_second() -> None:
    records = [RequestRecord(T + 0.2, 1.0, 200), RequestRecord(T + 1.7, 1.0, 200)]
    assert compute_availability(records, target_rate=RATE).seconds == 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"target_rate": 0},
        {"slo": 1.5},
        {"rollout_start": T + 5.0, "rollout_end": T + 4.0},
    ],
)
def test_impossible_parameters_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        compute_availability(outage_log(), **kwargs)


def test_the_report_form_is_plain_json_with_the_documented_keys(
    measured: Availability,
) -> None:
    data = json.loads(json.dumps(measured.to_dict(), allow_nan=False))
    for key in (
        "sent",
        "failed",
        "missing",
        "success_ratio",
        "longest_error_window_s",
        "seconds_with_errors",
        "error_budget_used",
        "p50_ms",
        "p95_ms",
        "p99_ms",
    ):
        assert data[key] == getattr(measured, key)
    assert len(data["per_second"]) == 20
    assert set(data["per_second"][0]) == {
        "t",
        "sent",
        "good",
        "failed",
        "missing",
        "p50_ms",
        "p95_ms",
        "p99_ms",
    }
    assert set(data["phases"]) == {"before", "during", "after"}
    assert data["per_instance"]["b"]["failed"] == 1


def _nearest_rank(values: list[float], percent: int) -> float | None:
    ranked = sorted(values)
    return ranked[math.ceil(percent * len(ranked) / 100) - 1] if ranked else None


def test_every_percentile_is_the_nearest_rank_of_its_own_requests() -> None:
    rng = random.Random(14)
    records = [
        RequestRecord(
            T + rng.uniform(0, 30),
            round(rng.lognormvariate(3, 1), 3),
            rng.choice((200, 200, 200, 503, 0)),
            instance=rng.choice(("a", "b", "c", "")),
        )
        for _ in range(3_000)
    ]
    measured = compute_availability(records, target_rate=100)
    for row in measured.per_second:
        mine = [r.latency_ms for r in records if math.floor(r.start) == row.t]
        assert (row.p50_ms, row.p95_ms, row.p99_ms) == tuple(
            _nearest_rank(mine, p) for p in (50, 95, 99)
        )
    kept = [r for r in records if measured.start <= math.floor(r.start) < measured.end]
    for name, breakdown in measured.per_instance.items():
        mine = [r.latency_ms for r in kept if (r.instance or UNATTRIBUTED) == name]
        assert (breakdown.sent, breakdown.p50_ms, breakdown.p99_ms) == (
            len(mine),
            _nearest_rank(mine, 50),
            _nearest_rank(mine, 99),
        )


def test_logs_of_several_workers_measure_as_one_log(tmp_path: Path) -> None:
    records = outage_log()
    write_request_log(tmp_path / "worker-1.csv", records[0::2])
    write_request_log(tmp_path / "worker-2.csv", records[1::2])
    window = {"target_rate": RATE, "slo": 0.99, "rollout_start": T + 8.5, "rollout_end": T + 12.2}
    assert availability_of_logs(
        [tmp_path / "worker-1.csv", tmp_path / "worker-2.csv"], **window
    ) == compute_availability(records, **window)


def test_no_name_and_the_unattributed_key_are_one_key(tmp_path: Path) -> None:
    names = ("", UNATTRIBUTED)
    records = [RequestRecord(T + s / 10, 1.0, 200, instance=names[s % 2]) for s in range(40)]
    write_request_log(tmp_path / "log.csv", records)
    assert list(availability_of_logs([tmp_path / "log.csv"]).per_instance) == [UNATTRIBUTED]
