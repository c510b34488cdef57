"""Read-only mode's availability: reads and writes apart, refusals by design apart."""

from __future__ import annotations

from cautious.measure.claims import evaluate_claims
from cautious.measure.readwrite import READ_ONLY_INSTANCE, read_only_window, read_write_stats
from cautious.measure.requestlog import RequestRecord
from cautious.rollout.plan import READ_ONLY_OFF_UNDO
from cautious.rollout.records import StepPhase, StepRecord


def _read(t: float, status: int = 200) -> RequestRecord:
    return RequestRecord(t, 5.0, status, "GET", "/users/[id]", instance="app-1")


def _write(t: float, status: int = 201, instance: str = "app-1") -> RequestRecord:
    return RequestRecord(t, 5.0, status, "PUT", "/users/[id]", instance=instance)


def _refused(t: float) -> RequestRecord:
    return _write(t, 503, READ_ONLY_INSTANCE)


def test_writes_refused_inside_the_window_are_counted_apart_from_failures() -> None:
    records = [
        _read(10.1),
        _write(10.2),
        _refused(11.0),
        _refused(12.5),
        _refused(13.9),
        _read(12.0),
        _write(15.0),
        _write(15.5, 500),  # a real failure
    ]
    stats = read_write_stats(records, window=(10.5, 14.0))
    assert (stats.reads, stats.reads_failed, stats.read_success_ratio) == (2, 0, 1.0)
    assert (stats.writes, stats.writes_acknowledged) == (6, 2)
    assert (stats.writes_refused, stats.writes_failed) == (3, 1)
    assert stats.write_refused_s == 3  # seconds 11, 12 and 13
    assert (stats.refused_first, stats.refused_last) == (11.0, 13.9)


def test_a_refusal_outside_the_window_is_an_unexpected_failure() -> None:
    stats = read_write_stats([_refused(20.0), _refused(11.0)], window=(10.0, 12.0))
    assert (stats.writes_refused, stats.writes_failed) == (1, 1)
    assert read_write_stats([_refused(11.0)], window=None).writes_failed == 1


def test_a_503_from_an_instance_is_not_a_refusal_by_design() -> None:
    stats = read_write_stats([_write(11.0, 503)], window=(10.0, 12.0))
    assert (stats.writes_refused, stats.writes_failed) == (0, 1)


def test_the_longest_refusal_run_ignores_gaps() -> None:
    records = [_refused(t) for t in (1.0, 2.0, 5.0, 6.0, 7.0, 8.5)]
    assert read_write_stats(records, window=(0, 10)).write_refused_s == 4


def test_no_reads_has_no_ratio() -> None:
    assert read_write_stats([], window=None).read_success_ratio is None


def _step(
    name: str,
    started: float,
    ended: float,
    kind: str | None = None,
    facts: dict[str, object] | None = None,
    phase: StepPhase = "forward",
) -> StepRecord:
    return StepRecord(name, phase, started, ended, "ok", kind=kind, facts=facts or {})


def test_the_window_runs_from_switching_read_only_on_to_switching_it_off() -> None:
    steps = [
        _step("on", 10.0, 10.1, kind="readonly", facts={"read_only": True}),
        _step("start", 10.1, 14.0, kind="start"),
        _step("off", 14.5, 14.6, kind="readonly", facts={"read_only": False}),
        _step("bake", 14.6, 16.0, kind="bake"),
    ]
    assert read_only_window(steps) == (10.0, 14.6)


def test_a_rollback_closes_the_window_where_it_switched_read_only_off() -> None:
    steps = [
        _step("on", 10.0, 10.1, kind="readonly", facts={"read_only": True}),
        _step("start", 10.1, 12.0, kind="start"),
        _step(READ_ONLY_OFF_UNDO, 12.5, 12.6, phase="rollback"),
        _step("retire", 12.6, 13.0, phase="rollback"),
    ]
    assert read_only_window(steps) == (10.0, 12.6)


def test_a_rollout_without_read_only_mode_has_no_window() -> None:
    assert read_only_window([_step("bake", 1.0, 2.0, kind="bake")]) is None


def test_read_only_claims_are_judged_on_reads_and_writes_apart() -> None:
    from cautious.config import ClaimsConfig
    from cautious.measure.availability import compute_availability

    records = [_read(10 + i / 10) for i in range(200)] + [_refused(12.0), _refused(13.5)]
    stats = read_write_stats(records, window=(11.0, 14.0))
    claims = ClaimsConfig(
        success_ratio=None,
        longest_error_window_s=None,
        p99_ms=None,
        read_success_ratio=1.0,
        write_refused_max_s=1,
        write_failures=0,
    )
    results = {
        item.name: item
        for item in evaluate_claims(claims, compute_availability(records), read_write=stats)
    }
    assert results["read_success_ratio"].verdict == "pass"
    assert results["write_failures"].verdict == "pass"
    assert results["write_refused_max_s"].verdict == "fail"  # seconds 12 and 13, in a row
    assert results["write_refused_max_s"].measured == 2
    nothing = evaluate_claims(claims, compute_availability(records))
    assert {item.verdict for item in nothing} == {"not-enough-data"}
