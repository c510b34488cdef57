"""Claims become pass, fail or not-enough-data, each with the figure that decided it."""

from __future__ import annotations

import pytest
from cautious.config import ClaimsConfig
from cautious.measure.availability import Availability, compute_availability
from cautious.measure.claims import (
    ClaimResult,
    evaluate_claims,
    format_figure,
    format_target,
    overall_verdict,
)
from cautious.measure.requestlog import RequestRecord

T = 1_700_000_000


def steady(
    seconds: int, rate: int = 100, latency_ms: float = 20.0, outage: range = range(0)
) -> Availability:
    """``seconds`` full seconds at ``rate`` req/s; during ``outage`` every request fails."""
    records = [
        RequestRecord(
            T + second + i / rate,
            latency_ms,
            0 if second in outage else 200,
            error="ConnectionError" if second in outage else "",
            instance="" if second in outage else "sample-1",
        )
        for second in range(seconds + 2)  # plus the two partial seconds that are dropped
        for i in range(rate)
    ]
    return compute_availability(records, target_rate=rate)


def by_name(results: list[ClaimResult]) -> dict[str, ClaimResult]:
    return {result.name: result for result in results}


def test_a_clean_run_passes_every_claim() -> None:
    results = evaluate_claims(ClaimsConfig(failed_requests=0), steady(10))
    assert [(r.name, r.verdict) for r in results] == [
        ("success_ratio", "pass"),
        ("longest_error_window_s", "pass"),
        ("p99_ms", "pass"),
        ("failed_requests", "pass"),
    ]
    assert overall_verdict(results) == "pass"


def test_each_claim_carries_its_target_and_measured_figure() -> None:
    results = by_name(evaluate_claims(ClaimsConfig(failed_requests=0), steady(10)))
    assert (results["success_ratio"].target, results["success_ratio"].measured) == (0.999, 1.0)
    assert results["longest_error_window_s"].measured == 0
    assert results["p99_ms"].measured == 20.0
    assert results["failed_requests"].measured == 0


def test_a_two_second_outage_fails_the_error_window_and_success_ratio() -> None:
    results = by_name(evaluate_claims(ClaimsConfig(), steady(20, outage=range(5, 7))))
    assert results["longest_error_window_s"].verdict == "fail"
    assert results["longest_error_window_s"].measured == 2
    assert results["success_ratio"].verdict == "fail"
    assert results["success_ratio"].measured == 1800 / 2000
    assert "measured 90 %" in results["success_ratio"].detail
    assert "1,800 good of 2,000" in results["success_ratio"].detail
    assert "claimed ≥ 99.9 %" in results["success_ratio"].detail
    assert results["p99_ms"].verdict == "pass"
    assert overall_verdict(list(results.values())) == "fail"


def test_failed_requests_count_missing_ones_too() -> None:
    records = [
        RequestRecord(T + second + i / 10, 5.0, 200) for second in range(6) for i in range(10)
    ]
    records = [r for r in records if not (T + 3 <= r.start < T + 4 and r.start % 1 >= 0.55)]
    measured = compute_availability(records, target_rate=10)
    (result,) = evaluate_claims(
        ClaimsConfig(
            success_ratio=None,
            longest_error_window_s=None,
            p99_ms=None,
            failed_requests=3,
            min_requests=10,
        ),
        measured,
    )
    assert (result.measured, result.verdict) == (4, "fail")
    assert "0 failed + 4 missing" in result.detail


def test_a_slow_p99_fails_the_latency_claim() -> None:
    (result,) = evaluate_claims(
        ClaimsConfig(success_ratio=None, longest_error_window_s=None, p99_ms=300),
        steady(5, latency_ms=450.0),
    )
    assert (result.name, result.verdict, result.measured) == ("p99_ms", "fail", 450.0)


def test_too_few_requests_is_not_enough_data_never_a_pass() -> None:
    results = evaluate_claims(ClaimsConfig(min_requests=1000), steady(5, rate=10))
    assert {r.verdict for r in results} == {"not-enough-data"}
    assert all("only 50 requests" in r.detail for r in results)
    assert all(r.measured is not None for r in results)  # the figures are still shown
    assert overall_verdict(results) == "not-enough-data"


def test_no_full_second_is_not_enough_data() -> None:
    results = evaluate_claims(ClaimsConfig(min_requests=1), steady(0))
    assert {r.verdict for r in results} == {"not-enough-data"}
    assert "no full second" in results[0].detail


def test_nothing_sent_leaves_latency_unmeasured() -> None:
    records = [RequestRecord(T + 0.5, 1.0, 200), RequestRecord(T + 5.5, 1.0, 200)]
    results = by_name(
        evaluate_claims(ClaimsConfig(min_requests=1), compute_availability(records, target_rate=50))
    )
    assert results["success_ratio"].verdict == "fail"  # 200 missing requests
    assert results["p99_ms"].verdict == "not-enough-data"
    assert results["p99_ms"].measured is None


def test_a_claim_set_to_none_is_not_evaluated() -> None:
    claims = ClaimsConfig(success_ratio=None, longest_error_window_s=None, p99_ms=None)
    assert evaluate_claims(claims, steady(5)) == []


def test_with_no_claim_evaluated_nothing_was_proven() -> None:
    assert overall_verdict([]) == "not-enough-data"


@pytest.mark.parametrize(
    ("verdicts", "overall"),
    [
        (["pass", "pass"], "pass"),
        (["pass", "not-enough-data"], "not-enough-data"),
        (["not-enough-data", "fail", "pass"], "fail"),
    ],
)
def test_the_overall_verdict_is_the_worst_one(verdicts: list[str], overall: str) -> None:
    results = [ClaimResult("x", 1.0, 1.0, v, "") for v in verdicts]  # type: ignore[arg-type]
    assert overall_verdict(results) == overall


def test_the_bound_is_exactly_inclusive() -> None:
    (result,) = evaluate_claims(
        ClaimsConfig(success_ratio=0.999, longest_error_window_s=None, p99_ms=None),
        steady(10, outage=range(0)),
    )
    assert result.verdict == "pass"
    records = [RequestRecord(T + s + i / 100, 1.0, 200) for s in range(12) for i in range(100)]
    records[150] = RequestRecord(records[150].start, 1.0, 500)
    (result,) = evaluate_claims(
        ClaimsConfig(success_ratio=0.999, longest_error_window_s=None, p99_ms=None),
        compute_availability(records, target_rate=100),
    )
    assert (result.measured, result.verdict) == (999 / 1000, "pass")


def test_figures_are_written_in_the_claims_unit() -> None:
    assert format_target("success_ratio", 0.999) == "≥ 99.9 %"
    assert format_target("longest_error_window_s", 1.0) == "≤ 1 s"
    assert format_figure("p99_ms", 312.44) == "312.4 ms"
    assert format_figure("failed_requests", 1234) == "1,234"
    assert format_figure("p99_ms", None) == "-"
    assert format_target("some_future_claim", 2.5) == "≤ 2.5"
