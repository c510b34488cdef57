"""Read-only mode's availability: reads and writes apart, refusals by design apart."""

from __future__ import annotations

from cautious.measure.readwrite import READ_ONLY_INSTANCE, read_write_stats
from cautious.measure.requestlog import RequestRecord


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
