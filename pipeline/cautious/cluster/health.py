"""Readiness: poll an instance's health endpoint until it answers 200, within a deadline.

Start-up time is stochastic (seeds/000), so readiness is *polled* — never a fixed sleep — and the
wait fails fast when the instance dies instead of burning the whole deadline.
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
    url: str,
    *,
    timeout_s: float,
    still_alive: Callable[[], bool] = lambda: True,
    poll_s: float = 0.1,
) -> float:
    """Seconds until ``url`` answered 200; GateFailed past the deadline or when the process died."""
    started = time.monotonic()
    deadline = started + timeout_s
    last = 0
    while time.monotonic() < deadline:
        last = probe(url)
        if last == 200:
            return time.monotonic() - started
        if not still_alive():
            raise GateFailed(f"readiness: the instance exited before {url} answered 200")
        time.sleep(poll_s)
    raise GateFailed(
        f"readiness: {url} did not answer 200 within {timeout_s:g} s (last status {last or 'none'})"
    )
