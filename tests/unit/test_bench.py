"""The bench's own parts: the synthetic log, the measuring subprocess's report, the tables."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cautious import bench
from cautious.bench import CapacityResult, LoadBench, render_capacity, write_synthetic_log
from cautious.measure.availability import availability_of_logs
from cautious.measure.requestlog import read_request_log


def test_the_synthetic_log_is_a_request_log_shaped_like_a_rollout(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    write_synthetic_log(path, rows=3_000, rate=100)
    records = read_request_log(path)
    assert len(records) == 3_000
    assert sum(1 for record in records if not record.ok) == 30
    assert {record.instance for record in records} == {"", "app-1", "app-2", "app-3"}
    assert {record.release for record in records} == {"", "v1", "v2"}
    measured = availability_of_logs([path], target_rate=100)
    assert (measured.seconds, measured.missing) == (28, 0)


def test_the_measuring_process_reports_its_costs_as_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "log.csv"
    write_synthetic_log(path, rows=2_000, rate=100)
    bench.main(["--measure", str(path), "100"])
    figures = json.loads(capsys.readouterr().out)
    assert figures["seconds"] == 18
    assert figures["peak_rss_mb"] >= figures["baseline_rss_mb"] > 0
    assert figures["wall_s"] > 0 and figures["cpu_s"] > 0


def _run(target: float, workers: int, achieved: float) -> LoadBench:
    return LoadBench(
        user_class="FastHttpUser",
        target_rate=target,
        users=int(target / 4),
        workers=workers,
        duration_s=15,
        seconds_measured=13,
        achieved_rate=achieved,
        ratio=round(achieved / target, 4),
        worst_second_rate=int(achieved * 0.9),
        worst_second_ratio=round(achieved * 0.9 / target, 4),
        sent=int(achieved * 13),
        failed=0,
        success_ratio=1.0,
        p50_ms=1.0,
        p99_ms=5.0,
        locust_cpu_s=10.0,
        locust_cpu_share_of_core=0.5,
        locust_cpu_us_per_request=50.0,
        per_second_sent=(),
        loadavg_1m=1.0,
    )


def test_the_capacity_table_sets_one_process_beside_the_workers(tmp_path: Path) -> None:
    runs = (
        _run(1_000, 1, 1_000),
        _run(1_000, 2, 1_000),
        _run(2_000, 1, 1_400),
        _run(2_000, 2, 2_000),
        _run(2_100, 2, 2_050),
    )
    result = CapacityResult(
        path=tmp_path / "capacity.json",
        table=tmp_path / "capacity.md",
        started="20261202T000000Z",
        machine={"loadavg_1m_before": 1.0, "loadavg_1m_after": 1.5, "cpus": 2},
        workers=2,
        runs=runs,
        single_rate=1_400,
        single_saturated=True,
        check=runs[-1],
        scaled=True,
    )
    lines = render_capacity(result).splitlines()
    assert lines[0].startswith("| target req/s | 1 process")
    assert lines[2].startswith("| 1,000 | 1,000 (100.0%") and "| 1,000 (100.0%" in lines[2]
    assert lines[4].startswith("| 2,100 | (saturated below) | 2,050 (97.6%")
    assert "at most 1,400 req/s" in lines[6]
    assert "1.46 x one process: holds" in lines[6]
