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
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TextIO

from cautious.exceptions import SandboxError

__all__ = [
    "FIELDS",
    "RequestLogError",
    "RequestLogWriter",
    "RequestRecord",
    "read_request_log",
    "write_request_log",
]

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


class RequestLogError(SandboxError):
    """The request log is missing, has the wrong header, or holds a row that does not parse."""


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
        """Good for the user: no error and a 2xx/3xx status (a 4xx/5xx or status 0 is bad)."""
        return not self.error and 200 <= self.status < 400


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
    """Every request in the log, in file order.

    Columns are found by header name, so extra columns are ignored; a missing column or a row
    that does not parse is a :class:`RequestLogError` naming the row. A final line without its
    newline is the mark of a generator killed mid-write: it is dropped, not an error.
    """
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        raise RequestLogError(f"cannot read the request log {source}: {exc.strerror}") from None
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    rows = csv.reader(io.StringIO(text, newline=""))
    header = next(rows, None)
    if header is None:
        raise RequestLogError(f"{source}: empty file; expected the header {','.join(FIELDS)}")
    missing = [field for field in FIELDS if field not in header]
    if missing:
        raise RequestLogError(
            f"{source}: header lacks {', '.join(missing)}; expected {','.join(FIELDS)}"
        )
    i_start, i_latency, i_status, i_method, i_name, i_error, i_instance, i_release = (
        header.index(field) for field in FIELDS
    )
    records: list[RequestRecord] = []
    append = records.append
    try:
        for row in rows:
            if not row:
                continue
            append(
                RequestRecord(
                    float(row[i_start]),
                    float(row[i_latency]),
                    int(row[i_status]),
                    row[i_method],
                    row[i_name],
                    row[i_error],
                    row[i_instance],
                    row[i_release],
                )
            )
    except (ValueError, IndexError) as exc:
        raise RequestLogError(
            f"{source}: row {len(records) + 1} is not a request log row ({exc})"
        ) from None
    return records
