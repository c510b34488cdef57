"""Readiness: poll an instance's health endpoint until it answers 200, within a deadline.

Start-up time is stochastic, so readiness is *polled* — never a fixed sleep — and the wait
fails fast when the instance dies instead of burning the whole deadline. What a probe is (an
HTTP GET on this machine, a request over SSH, a scripted answer in tests) is the backend's.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import requests

from cautious.exceptions import GateFailed

__all__ = ["probe", "wait_ready"]

_PROBE_TIMEOUT_S = 1.0


def probe(url: str, timeout_s: float = _PROBE_TIMEOUT_S) -> int:
    """HTTP status of one GET (0 when nothing answered)."""
    try:
        return requests.get(url, timeout=timeout_s).status_code
    except requests.RequestException:
        return 0


def wait_ready(
    check: Callable[[], int],
    *,
    what: str,
    timeout_s: float,
    still_alive: Callable[[], bool] = lambda: True,
    poll_s: float = 0.1,
) -> float:
    """Seconds until ``check`` answered 200; GateFailed past the deadline or when the process died.

    ``what`` names the probed endpoint in the error messages.
    """
    started = time.monotonic()
    deadline = started + timeout_s
    last = 0
    while time.monotonic() < deadline:
        last = check()
        if last == 200:
            return time.monotonic() - started
        if not still_alive():
            raise GateFailed(f"readiness: the instance exited before {what} answered 200")
        time.sleep(poll_s)
    raise GateFailed(
        f"readiness: {what} did not answer 200 within {timeout_s:g} s "
        f"(last status {last or 'none'})"
    )
