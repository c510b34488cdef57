"""Locust plugin that writes the request log: one CSV row per request, for availability.

Locust's own statistics aggregate away what availability needs (when each request started,
which instance answered it, whether it got any answer at all), so this plugin records every
request to the path in ``$CAUTIOUS_REQUEST_LOG``. Columns, in order::

    start,latency_ms,status,method,name,error,instance,release

``start`` is the epoch second the request began; ``status`` is 0 when no usable response
arrived (connection refused or reset, timeout, body cut off); ``instance`` / ``release`` are the
``X-Instance`` / ``X-Release`` response headers, empty when absent. Each row is one line
(error text is flattened), so a reader may follow the growing file line by line.

Locust 2.47 accepts comma-separated locustfiles, so this file rides along with any user's
locustfile unchanged:
``python -m locust -f user_file.py,pipeline/cautious/measure/locust_request_logger.py``
(``cautious.measure.load`` does exactly that). Load it once; loading it twice logs every
request twice.

This module imports locust, which monkey-patches the interpreter with gevent on import. The
``pipeline`` package must never import it; only a Locust subprocess loads it.
"""

from __future__ import annotations

import csv
import os
import time
from collections.abc import Callable
from typing import Any, Protocol

import gevent
from locust import events
from locust.env import Environment
from locust.exception import CatchResponseError
from locust.runners import MasterRunner

__all__ = ["HEADER", "LOG_ENV_VAR", "RequestLogWriter", "status_of"]

LOG_ENV_VAR = "CAUTIOUS_REQUEST_LOG"
ORCHESTRATOR_ENV_VAR = "CAUTIOUS_ORCHESTRATOR_PID"
_WATCH_INTERVAL_S = 1.0
HEADER = ("start", "latency_ms", "status", "method", "name", "error", "instance", "release")

# Flushing at most once a second keeps the write cost per request tiny while letting a live
# progress line (cautious.measure.load) see rows with at most a second's delay.
_FLUSH_INTERVAL_S = 1.0
_BUFFER_BYTES = 1 << 20
_MAX_ERROR_CHARS = 300


class _Hook(Protocol):
    """The part of Locust's ``EventHook`` used here (its own method carries no annotations)."""

    def add_listener(self, handler: Callable[..., None]) -> object: ...


def _listen(hook: _Hook, handler: Callable[..., None]) -> None:
    """Attach ``handler`` to ``hook`` through a typed signature."""
    hook.add_listener(handler)


def status_of(response: Any, exception: BaseException | None) -> int:
    """The HTTP status to log; 0 when the request got no usable response.

    A failure below 400 means the client gave up on the exchange (refused, reset, timed out,
    truncated body), which is an outage, not an answer. A failure marked by the user's own
    ``catch_response`` check keeps the status the server actually sent.
    """
    try:
        status = int(getattr(response, "status_code", 0) or 0)
    except (TypeError, ValueError):
        status = 0
    if exception is not None and status < 400 and not isinstance(exception, CatchResponseError):
        return 0
    return status


def _error_text(exception: BaseException | None) -> str:
    """One short line describing the failure, so every CSV row stays one line."""
    if exception is None:
        return ""
    text = " ".join(str(exception).split()) or type(exception).__name__
    return text[:_MAX_ERROR_CHARS]


def _header(response: Any, name: str) -> str:
    """A response header, or "" when there is no response or no such header."""
    headers = getattr(response, "headers", None)
    if not headers:
        return ""
    value = headers.get(name)
    return str(value) if value is not None else ""


class RequestLogWriter:
    """Buffered CSV writer fed by Locust's ``request`` event."""

    def __init__(self, path: str) -> None:
        self._file = open(path, "w", newline="", encoding="utf-8", buffering=_BUFFER_BYTES)  # noqa: SIM115
        self._csv = csv.writer(self._file, lineterminator="\n")
        self._csv.writerow(HEADER)
        self._file.flush()
        self._last_flush = time.monotonic()

    def on_request(
        self,
        request_type: str,
        name: str,
        response_time: float | None,
        response: Any = None,
        exception: BaseException | None = None,
        start_time: float | None = None,
        **_: Any,
    ) -> None:
        """Append one row; flush when the last flush is a second old."""
        if self._file.closed:
            return
        start = start_time if start_time is not None else time.time() - (response_time or 0) / 1e3
        self._csv.writerow(
            (
                f"{start:.6f}",
                f"{response_time or 0.0:.3f}",
                status_of(response, exception),
                request_type,
                name,
                _error_text(exception),
                _header(response, "X-Instance"),
                _header(response, "X-Release"),
            )
        )
        now = time.monotonic()
        if now - self._last_flush >= _FLUSH_INTERVAL_S:
            self._file.flush()
            self._last_flush = now

    def flush(self, **_: Any) -> None:
        """Write buffered rows to disk (at test stop, so the log is complete)."""
        if not self._file.closed:
            self._file.flush()

    def close(self, **_: Any) -> None:
        """Flush and close (when Locust quits)."""
        if not self._file.closed:
            self._file.close()


def _watch_orchestrator(environment: Environment, orchestrator_pid: int) -> None:
    """Quit when the process that started Locust is gone (killed mid-rollout, say).

    Locust runs in a session of its own, so no signal from the orchestrator's terminal or
    process group reaches it; without this a SIGKILLed ``invoke deploy`` would leave load
    running against a dead sandbox until ``-t`` ran out. Bounded by the run itself.
    """
    while os.getppid() == orchestrator_pid:
        gevent.sleep(_WATCH_INTERVAL_S)
    if environment.runner is not None:
        environment.runner.quit()


def _on_init(environment: Environment, **_: Any) -> None:
    """Attach a writer when ``$CAUTIOUS_REQUEST_LOG`` names a file.

    A master in distributed mode sends no requests, so it writes nothing.

    It also refreshes gevent's loop clock: the loop caches "now" from when it was created,
    before Locust's imports, and ``-t`` is a timer set against that stale "now", so a run
    that took 2.5 s to start (a busy 2-core machine) stopped 2.5 s early (measured: ``-t 10s``
    ended after 7.4 s; with the refresh, after 10.0 s).
    """
    gevent.get_hub().loop.update_now()
    orchestrator = os.environ.get(ORCHESTRATOR_ENV_VAR, "")
    if orchestrator.isdigit():
        gevent.spawn(_watch_orchestrator, environment, int(orchestrator))
    path = os.environ.get(LOG_ENV_VAR, "")
    if not path or isinstance(environment.runner, MasterRunner):
        return
    writer = RequestLogWriter(path)
    _listen(environment.events.request, writer.on_request)
    _listen(environment.events.test_stop, writer.flush)
    _listen(environment.events.quitting, writer.close)


_listen(events.init, _on_init)
