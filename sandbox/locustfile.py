"""Default load for the sample service: mostly reads, some writes, a few slow requests.

The mix exercises what a rollout can break: reads (``GET /``, ``GET /items``, 80 %), writes
(``POST /items``, 15 %, which read-only mode answers with 503) and slow requests
(``GET /slow?ms=200``, 5 %), which are in flight when an instance is drained.

Settings come from the environment ``cautious.measure.load`` sets for the Locust subprocess:

- ``CAUTIOUS_RATE`` (req/s, default 100) and ``CAUTIOUS_USERS`` (default 50, and it must match
  Locust's ``-u``): each user runs one task per ``users / rate`` seconds, like
  ``constant_throughput(rate / users)``, so the swarm sends the target rate. Users start
  staggered, one every ``1 / rate`` s: Locust spawns them all in one instant, and in step they
  would fire in bursts once per period (measured at 1,000 req/s with 250 users against a free
  target: median latency 58 ms and a 14 % short second in step; 0.6 ms and ±0.4 % staggered).
  Use enough users that the period covers a slow request
  (``cautious.measure.load.recommended_users``:
  at least rate / 4), or the rate falls short;
- ``CAUTIOUS_TIMEOUT_S`` (default 2): connect and read timeout. A short timeout turns a hung
  instance into a logged failure instead of a user silently stuck for a minute.
- ``CAUTIOUS_WORKERS`` and ``CAUTIOUS_WORKER_INDEX`` (defaults 1 and 0): in Locust's
  distributed mode each worker process runs this file with its share of the users; worker
  ``w`` gives its users the start slots ``w, w + workers, ...``, so the whole swarm is still
  spread evenly over the period instead of each worker's users firing in step with the
  other's.

FastHttpUser, because on this 2-core machine it reaches 1,000 req/s with CPU to spare where
HttpUser (requests) tops out below it (numbers in ``cautious.bench`` results). Any status of 400
or more is a failure (FastHttpUser's default).
"""

from __future__ import annotations

import itertools
import os
import time

import gevent
from locust import FastHttpUser, task

__all__ = ["PacedUser", "SandboxUser"]


def _positive(name: str, default: float) -> float:
    """A positive number from the environment, so a typo fails loudly at start-up."""
    raw = os.environ.get(name, "")
    value = float(raw) if raw.strip() else default
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {raw!r}")
    return value


RATE = _positive("CAUTIOUS_RATE", 100.0)
USERS = max(1, int(_positive("CAUTIOUS_USERS", 50)))
TIMEOUT_S = _positive("CAUTIOUS_TIMEOUT_S", 2.0)

PERIOD_S = USERS / RATE  # each user's pacing period

WORKERS = max(1, int(_positive("CAUTIOUS_WORKERS", 1)))
WORKER_INDEX = int(os.environ.get("CAUTIOUS_WORKER_INDEX", "").strip() or 0)

_item_ids = itertools.count(1)
_user_ids = itertools.count(WORKER_INDEX, WORKERS)  # this worker's start slots


class PacedUser(FastHttpUser):
    """A client paced so the swarm sends the target rate, evenly spread (other locustfiles in
    this folder build on it: ``from locustfile import PacedUser``)."""

    abstract = True
    connection_timeout = TIMEOUT_S
    network_timeout = TIMEOUT_S
    _due = 0.0  # monotonic time this user's current task was due

    def on_start(self) -> None:
        """Start user k at k / RATE s, so the swarm's requests are evenly spread in time.

        Locust spawns every user in the same instant; paced from that instant they would all
        fire together once per period, and the burst would queue behind Locust's one CPU.
        """
        self._due = time.monotonic() + (next(_user_ids) % USERS) / RATE
        gevent.sleep(max(0.0, self._due - time.monotonic()))

    def wait_time(self) -> float:
        """``constant_throughput(RATE / USERS)`` that keeps the user's phase: the next task is
        due one period after this one was; a task that overran starts at once (no catch-up)."""
        now = time.monotonic()
        self._due = max(self._due + PERIOD_S, now)
        return self._due - now


class SandboxUser(PacedUser):
    """One simulated client of the sample service."""

    @task(40)
    def index(self) -> None:
        """Read the front page."""
        self.client.get("/")

    @task(40)
    def list_items(self) -> None:
        """Read the item list."""
        self.client.get("/items")

    @task(15)
    def create_item(self) -> None:
        """Write one item (201 expected)."""
        self.client.post("/items", json={"name": f"item-{next(_item_ids)}"})

    @task(5)
    def slow(self) -> None:
        """A 200 ms request, so draining has something in flight to wait for."""
        self.client.get("/slow?ms=200", name="/slow")
