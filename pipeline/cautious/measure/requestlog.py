"""The request log: one CSV row per request, the only thing load hands to measurement.

The load generator (a Locust subprocess) writes it; availability reads it. Keeping the format
in one small module means both sides agree on it without importing each other (importing
locust here would monkey-patch the reader's process).

Columns, in this order: ``start,latency_ms,status,method,name,error,instance,release``

- ``start``: unix epoch seconds (float) when the request *began*, so a request that hangs
  through an outage is counted in the second the user asked, not the second it gave up;
- ``latency_ms``: float; ``status``: HTTP status, ``0`` for a connection error or timeout;
- ``error``: empty, or what went wrong;
- ``instance`` / ``release``: the ``X-Instance`` / ``X-Release`` response headers, empty when the
  response had none (a connection error, or an answer from the load balancer itself).
"""

from __future__ import annotations

import csv
import io
import itertools
import math
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, TextIO, TypeVar

import numpy as np
import numpy.typing as npt

from cautious.exceptions import SandboxError

__all__ = [
    "FIELDS",
    "Outcomes",
    "RequestLogError",
    "RequestLogWriter",
    "RequestRecord",
    "is_ok",
    "iter_outcomes",
    "iter_request_log",
    "outcomes_of",
    "read_request_log",
    "write_request_log",
]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IndexArray = npt.NDArray[np.intp]

FIELDS: tuple[str, ...] = (
    "start",
    "latency_ms",
    "status",
    "method",
    "name",
    "error",
    "instance",
    "release",
)

# A batch of about 1 MiB of log (~20,000 rows): large enough that converting it column by
# column pays, small enough that its temporary copies stay a few MB.
_BATCH_BYTES = 1 << 20
_BATCH_ROWS = 20_000
# What a plain row holds for availability. The error text only has to be told from "", so one
# byte of it is enough; names longer than _NAME_BYTES - 1 send the batch to the csv reader.
_NAME_BYTES = 128
_PLAIN_ROW = np.dtype(
    [
        ("start", np.float64),
        ("latency_ms", np.float64),
        ("status", np.int64),
        ("error", "S1"),
        ("instance", f"S{_NAME_BYTES}"),
        ("release", f"S{_NAME_BYTES}"),
    ]
)
# Odd multipliers that hash a name's bytes, eight at a time (_names).
_NAME_MIX = np.random.default_rng(14).integers(1, 2**63, _NAME_BYTES // 8, dtype=np.uint64) | 1


class RequestLogError(SandboxError):
    """The request log is missing, has the wrong header, or holds a row that does not parse."""


def is_ok(status: int, error: str) -> bool:
    """Good for the user: no error and a 2xx/3xx status (a 4xx/5xx or status 0 is bad)."""
    return not error and 200 <= status < 400


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request as the load generator saw it."""

    start: float
    latency_ms: float
    status: int
    method: str = "GET"
    name: str = "/"
    error: str = ""
    instance: str = ""
    release: str = ""

    @property
    def ok(self) -> bool:
        """Good for the user (:func:`is_ok`)."""
        return is_ok(self.status, self.error)


class RequestLogWriter:
    """Appends records to a request log as they happen, header first.

    The load generator streams through this (one ``write`` per request) so that a run killed
    half-way still leaves every finished request on disk; each row is flushed with the file's
    buffer, and ``flush()`` forces it.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        # The writer is the context manager: it owns the file until close().
        self._file: TextIO = Path(path).open("w", encoding="utf-8", newline="")  # noqa: SIM115
        self._writer = csv.writer(self._file, lineterminator="\n")
        self._writer.writerow(FIELDS)

    def write(self, record: RequestRecord) -> None:
        """Append one request."""
        self._writer.writerow(
            (
                repr(record.start),
                repr(record.latency_ms),
                record.status,
                record.method,
                record.name,
                record.error,
                record.instance,
                record.release,
            )
        )

    def flush(self) -> None:
        """Push buffered rows to the file (e.g. once a second from the generator)."""
        self._file.flush()

    def close(self) -> None:
        """Flush and close; safe to call twice."""
        self._file.close()

    def __enter__(self) -> RequestLogWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def write_request_log(path: str | os.PathLike[str], records: Iterable[RequestRecord]) -> None:
    """Write a whole request log (replacing the file)."""
    with RequestLogWriter(path) as writer:
        for record in records:
            writer.write(record)


def read_request_log(path: str | os.PathLike[str]) -> list[RequestRecord]:
    """Every request in the log, in file order (see :func:`iter_request_log`)."""
    return list(iter_request_log(path))


def iter_request_log(path: str | os.PathLike[str]) -> Iterator[RequestRecord]:
    """Every request in the log, in file order, one at a time (memory stays flat).

    Columns are found by header name, so extra columns are ignored; a missing column or a row
    that does not parse (a time or latency must be a finite number) is a
    :class:`RequestLogError` naming the row. A final line without its newline is the mark of a
    generator killed mid-write: it is dropped, not an error. The file is opened and its header
    checked at the call, so a bad file fails there.
    """
    source = Path(path)
    handle, layout = _open(source)
    return _row_stream(source, handle, layout.columns, _record, rows_before=0)


@dataclass(frozen=True)
class Outcomes:
    """A batch of requests as columns: what availability needs, and nothing more.

    ``instance``/``release`` are indices into ``instance_names``/``release_names`` (names as
    logged, ``""`` for none). A million requests held this way take about 30 MB; as
    :class:`RequestRecord` objects they would take over ten times that.
    """

    start: FloatArray
    latency_ms: FloatArray
    ok: BoolArray
    instance: IndexArray
    instance_names: tuple[str, ...]
    release: IndexArray
    release_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.start)


def iter_outcomes(
    path: str | os.PathLike[str], batch_bytes: int = _BATCH_BYTES
) -> Iterator[Outcomes]:
    """The log as :class:`Outcomes` batches of about ``batch_bytes`` of file each.

    Rows read as :func:`iter_request_log` reads them, with the same checks and errors, but a
    batch of plain rows (no quoted field, one row per line) is split and converted column by
    column instead of row by row, about three times faster. From the first batch that is not
    plain, the rest of the file is read row by row.
    """
    source = Path(path)
    handle, layout = _open(source)
    return _outcome_stream(source, handle, layout, max(1, batch_bytes))


def outcomes_of(records: Iterable[RequestRecord]) -> Iterator[Outcomes]:
    """Records (from a log read earlier, or made in memory) as :class:`Outcomes` batches."""
    return _batched(
        (record.start, record.latency_ms, record.ok, record.instance, record.release)
        for record in records
    )


@dataclass(frozen=True)
class _Layout:
    """Where the columns are in this file's rows, and how many fields a plain row has."""

    columns: tuple[int, ...]
    width: int


_Row = TypeVar("_Row")
_Outcome = tuple[float, float, bool, str, str]


def _open(source: Path) -> tuple[BinaryIO, _Layout]:
    """Open the log and read its header; the caller owns the returned handle."""
    try:
        handle = source.open("rb")  # returned open: the stream that reads it closes it
    except OSError as exc:
        raise RequestLogError(f"cannot read the request log {source}: {exc.strerror}") from None
    try:
        line = handle.readline()
        if not line.endswith(b"\n"):  # nothing, or a header cut off mid-write
            raise RequestLogError(f"{source}: empty file; expected the header {','.join(FIELDS)}")
        header = next(csv.reader([line.decode("utf-8")]), [])
        missing = [field for field in FIELDS if field not in header]
        if missing:
            raise RequestLogError(
                f"{source}: header lacks {', '.join(missing)}; expected {','.join(FIELDS)}"
            )
    except BaseException:
        handle.close()
        raise
    return handle, _Layout(tuple(header.index(field) for field in FIELDS), len(header))


def _record(row: list[str], i: tuple[int, ...]) -> RequestRecord:
    return RequestRecord(
        _finite(row[i[0]]),
        _finite(row[i[1]]),
        int(row[i[2]]),
        row[i[3]],
        row[i[4]],
        row[i[5]],
        row[i[6]],
        row[i[7]],
    )


def _outcome(row: list[str], i: tuple[int, ...]) -> _Outcome:
    return (
        _finite(row[i[0]]),
        _finite(row[i[1]]),
        is_ok(int(row[i[2]]), row[i[5]]),
        row[i[6]],
        row[i[7]],
    )


def _row_stream(
    source: Path,
    handle: BinaryIO,
    columns: tuple[int, ...],
    convert: Callable[[list[str], tuple[int, ...]], _Row],
    rows_before: int,
) -> Iterator[_Row]:
    """Rows from the handle's position on, parsed by the csv module (quotes, newlines in
    fields); ``rows_before`` numbers them on from rows already read."""
    with handle, io.TextIOWrapper(handle, encoding="utf-8", newline="") as text:
        count = rows_before
        try:
            for row in csv.reader(_whole_lines(text)):
                if row:
                    count += 1
                    yield convert(row, columns)
        except (ValueError, IndexError) as exc:
            raise RequestLogError(
                f"{source}: row {count} is not a request log row ({exc})"
            ) from None


def _whole_lines(handle: TextIO) -> Iterator[str]:
    """The file's lines up to its last newline: what follows it is a row cut off mid-write."""
    pending: list[str] = []
    for piece in handle:
        pending.append(piece)
        if piece.endswith("\n"):
            yield from pending
            pending.clear()


def _finite(text: str | bytes) -> float:
    """A float that can be a time or a latency (``nan`` and ``inf`` are not)."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not a finite number")
    return value


def _outcome_stream(
    source: Path, handle: BinaryIO, layout: _Layout, batch_bytes: int
) -> Iterator[Outcomes]:
    with handle:
        rows_before = 0
        offset = handle.tell()
        carry = b""
        while block := handle.read(batch_bytes):
            block = carry + block
            cut = block.rfind(b"\n") + 1
            whole, carry = block[:cut], block[cut:]
            if not whole:
                continue
            batch = _plain_batch(whole, layout)
            if batch is None:
                handle.seek(offset)
                yield from _batched(
                    _row_stream(source, handle, layout.columns, _outcome, rows_before)
                )
                return
            yield batch
            rows_before += len(batch)
            offset += len(whole)
        # ``carry`` now holds a row cut off mid-write, if any: dropped.


def _plain_batch(whole: bytes, layout: _Layout) -> Outcomes | None:
    """Whole lines parsed by numpy's C reader, or None when they are not all plain rows (a
    quote, a carriage return, a NUL, a name longer than a column holds, a value that does not
    parse or is not finite): the row-by-row reader then takes over, and names the bad row."""
    if b'"' in whole or b"\r" in whole or b"\0" in whole:
        return None
    i_start, i_latency, i_status, _, _, i_error, i_instance, i_release = layout.columns
    try:
        rows = np.loadtxt(
            io.BytesIO(whole),
            dtype=_PLAIN_ROW,
            delimiter=",",
            comments=None,
            quotechar=None,
            usecols=(i_start, i_latency, i_status, i_error, i_instance, i_release),
            ndmin=1,
        )
    except ValueError:
        return None
    start, latency, status = rows["start"], rows["latency_ms"], rows["status"]
    if not (np.isfinite(start).all() and np.isfinite(latency).all()):
        return None
    try:
        instance, instance_names = _names(rows["instance"])
        release, release_names = _names(rows["release"])
    except (ValueError, UnicodeDecodeError):
        return None
    ok = (rows["error"] == b"") & (status >= 200) & (status < 400)
    return Outcomes(
        np.ascontiguousarray(start),
        np.ascontiguousarray(latency),
        ok,
        instance,
        instance_names,
        release,
        release_names,
    )


def _names(column: npt.NDArray[np.bytes_]) -> tuple[IndexArray, tuple[str, ...]]:
    """Distinct names and each row's index into them, without a Python object per row.

    Rows are told apart by a 64-bit hash of their bytes, then checked byte for byte against
    the name their hash picked, so a collision can only send the batch to the csv reader
    (ValueError), never merge two names. A name that fills the column may have been cut:
    ValueError too.
    """
    rows = np.ascontiguousarray(column)
    words = rows.view(np.uint64).reshape(len(rows), -1)
    _, first, codes = np.unique(
        (words * _NAME_MIX).sum(axis=1, dtype=np.uint64), return_index=True, return_inverse=True
    )
    codes = np.asarray(codes, dtype=np.intp).reshape(-1)
    if not np.array_equal(words[first][codes], words):
        raise ValueError("two names share a hash")
    names: list[bytes] = rows[first].tolist()
    if any(len(name) >= _NAME_BYTES for name in names):
        raise ValueError("a name as long as the column")
    return codes, tuple(name.decode("utf-8") for name in names)


_Name = TypeVar("_Name", str, bytes)


def _codes(column: list[_Name]) -> tuple[IndexArray, list[_Name]]:
    """Each value as an index into the distinct values (in order of first appearance)."""
    names = list(dict.fromkeys(column))
    index = {name: i for i, name in enumerate(names)}
    return np.fromiter(map(index.__getitem__, column), np.intp, len(column)), names


def _batched(rows: Iterable[_Outcome]) -> Iterator[Outcomes]:
    iterator = iter(rows)
    while chunk := list(itertools.islice(iterator, _BATCH_ROWS)):
        start, latency, ok, instances, releases = zip(*chunk, strict=True)
        instance, instance_names = _codes(list(instances))
        release, release_names = _codes(list(releases))
        yield Outcomes(
            np.array(start, dtype=np.float64),
            np.array(latency, dtype=np.float64),
            np.array(ok, dtype=np.bool_),
            instance,
            tuple(instance_names),
            release,
            tuple(release_names),
        )
