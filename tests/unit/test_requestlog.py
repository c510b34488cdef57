"""The request log round-trips every request the load generator saw, and refuses garbage."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest
from cautious.measure.requestlog import (
    FIELDS,
    Outcomes,
    RequestLogError,
    RequestLogWriter,
    RequestRecord,
    iter_outcomes,
    outcomes_of,
    read_request_log,
    write_request_log,
)

HEADER = "start,latency_ms,status,method,name,error,instance,release\n"


def test_the_header_is_the_documented_one() -> None:
    assert ",".join(FIELDS) + "\n" == HEADER


def test_records_round_trip_exactly(tmp_path: Path) -> None:
    records = [
        RequestRecord(1_700_000_000.123456, 12.5, 200, "GET", "/", "", "sample-1", "v1"),
        RequestRecord(1_700_000_000.2, 2000.0, 0, "POST", "/orders", "timed out", "", ""),
        RequestRecord(1_700_000_001.0 / 3, 0.1 + 0.2, 503, "GET", "/", "", "sample-2", "v2"),
    ]
    path = tmp_path / "requests.csv"
    write_request_log(path, records)
    assert path.read_text().startswith(HEADER)
    assert read_request_log(path) == records


def test_error_text_with_commas_quotes_and_newlines_survives(tmp_path: Path) -> None:
    nasty = 'ConnectionError("refused, errno 111")\nsecond line'
    record = RequestRecord(1.5, 3.0, 0, error=nasty)
    write_request_log(tmp_path / "log.csv", [record])
    assert read_request_log(tmp_path / "log.csv") == [record]


def test_a_streaming_writer_leaves_finished_rows_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    with RequestLogWriter(path) as writer:
        writer.write(RequestRecord(1.0, 2.0, 200))
        writer.flush()
        assert read_request_log(path) == [RequestRecord(1.0, 2.0, 200)]


@pytest.mark.parametrize(
    ("status", "error", "ok"),
    [
        (200, "", True),
        (302, "", True),
        (399, "", True),
        (400, "", False),
        (500, "", False),
        (0, "ConnectionRefusedError", False),
        (200, "response body did not match", False),
        (199, "", False),
    ],
)
def test_a_request_is_ok_only_without_error_and_with_a_2xx_or_3xx_status(
    status: int, error: str, ok: bool
) -> None:
    assert RequestRecord(0.0, 1.0, status, error=error).ok is ok


def test_columns_are_found_by_name_and_extra_columns_are_ignored(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text(
        "release,instance,error,name,method,status,latency_ms,start,extra\n"
        "v1,sample-1,,/,GET,200,4.5,10.25,whatever\n"
    )
    assert read_request_log(path) == [
        RequestRecord(10.25, 4.5, 200, "GET", "/", "", "sample-1", "v1")
    ]


def test_a_final_line_cut_off_mid_write_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text(HEADER + "10.5,4.0,200,GET,/,,a,v1\n" + "11.0,3.")
    assert read_request_log(path) == [RequestRecord(10.5, 4.0, 200, "GET", "/", "", "a", "v1")]


def test_a_row_that_does_not_parse_is_an_error_naming_the_row(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text(HEADER + "10.5,4.0,200,GET,/,,a,v1\n" + "11.0,fast,200,GET,/,,a,v1\n")
    with pytest.raises(RequestLogError, match="row 2"):
        read_request_log(path)


def test_a_missing_column_is_an_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("start,latency_ms,status\n1.0,2.0,200\n")
    with pytest.raises(RequestLogError, match="method, name, error, instance, release"):
        read_request_log(path)


def test_an_empty_or_absent_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(RequestLogError, match="empty file"):
        read_request_log(tmp_path / "empty.csv")
    with pytest.raises(RequestLogError, match="cannot read"):
        read_request_log(tmp_path / "absent.csv")


def test_a_log_with_only_a_header_holds_no_requests(tmp_path: Path) -> None:
    write_request_log(tmp_path / "log.csv", [])
    assert read_request_log(tmp_path / "log.csv") == []


def _as_rows(batches: Iterable[Outcomes]) -> list[tuple[float, float, bool, str, str]]:
    return [
        (start, latency, ok, batch.instance_names[i], batch.release_names[r])
        for batch in batches
        for start, latency, ok, i, r in zip(
            batch.start.tolist(),
            batch.latency_ms.tolist(),
            batch.ok.tolist(),
            batch.instance.tolist(),
            batch.release.tolist(),
            strict=True,
        )
    ]


def _expected(records: Iterable[RequestRecord]) -> list[tuple[float, float, bool, str, str]]:
    return [(r.start, r.latency_ms, r.ok, r.instance, r.release) for r in records]


def _mixed_log(rows: int) -> list[RequestRecord]:
    return [
        RequestRecord(
            1_700_000_000 + i / 7,
            i * 0.37,
            (200, 503, 0, 302)[i % 4],
            error="" if i % 4 < 2 else "refused",
            instance=("", "sample-1", "sample-2")[i % 3],
            release=("v1", "v2")[i % 2],
        )
        for i in range(rows)
    ]


@pytest.mark.parametrize("batch_bytes", [1, 64, 1 << 20])
def test_outcomes_hold_what_records_hold_whatever_the_batch_size(
    tmp_path: Path, batch_bytes: int
) -> None:
    records = _mixed_log(500)
    write_request_log(tmp_path / "log.csv", records)
    assert _as_rows(iter_outcomes(tmp_path / "log.csv", batch_bytes)) == _expected(records)
    assert _as_rows(outcomes_of(records)) == _expected(records)


def test_outcomes_read_quoted_fields_after_plain_rows(tmp_path: Path) -> None:
    records = _mixed_log(300)
    records[200] = RequestRecord(1.5, 3.0, 0, error='refused, "errno 111"\nsecond line')
    records[250] = RequestRecord(2.5, 3.0, 200, instance="x" * 200)  # longer than a column
    write_request_log(tmp_path / "log.csv", records)
    assert _as_rows(iter_outcomes(tmp_path / "log.csv", 256)) == _expected(records)


def test_outcomes_drop_a_final_line_cut_off_mid_write(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text(HEADER + "10.5,4.0,200,GET,/,,a,v1\n" + "11.0,3.")
    assert _as_rows(iter_outcomes(path)) == [(10.5, 4.0, True, "a", "v1")]


@pytest.mark.parametrize("bad", ["fast", "nan", "inf"])
def test_outcomes_name_the_first_row_that_does_not_parse(tmp_path: Path, bad: str) -> None:
    path = tmp_path / "log.csv"
    plain = "".join(f"{10 + i},4.0,200,GET,/,,a,v1\n" for i in range(99))
    path.write_text(HEADER + plain + f"11.0,{bad},200,GET,/,,a,v1\n" + plain)
    with pytest.raises(RequestLogError, match="row 100 "):
        list(iter_outcomes(path, 512))
    with pytest.raises(RequestLogError, match="row 100 "):
        read_request_log(path)


def test_outcomes_of_a_missing_or_headless_file_fail_at_the_call(tmp_path: Path) -> None:
    with pytest.raises(RequestLogError, match="cannot read"):
        iter_outcomes(tmp_path / "absent.csv")
    (tmp_path / "headless.csv").write_text("1.0,2.0,200\n")
    with pytest.raises(RequestLogError, match="header lacks"):
        iter_outcomes(tmp_path / "headless.csv")
