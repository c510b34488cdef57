"""Load for the stateful sample (``sandbox/stateful``): writes with client-made ids, reads back.

The mix: writes (``PUT /users/<new id>``, 25 %), reads of a user this process wrote
(``GET /users/<id>``, reported as ``/users/[id]``, 55 %), lists (``GET /users?limit=20``,
10 %) and the front page (``GET /``, 10 %). Read-only mode refuses the writes (503) and keeps
the reads flowing.

Every acknowledged write (200 or 201) is appended to ``acked.jsonl`` beside the request log
(``$CAUTIOUS_REQUEST_LOG``) as ``{"id", "name"}``, one line each, written through at once: a
data check proves afterwards that every write a client saw acknowledged is still there. One
name in five has an accent, so a release that mangles text shows in the reads.

Pacing comes from the default locustfile's ``PacedUser`` (same settings, same environment).
"""

from __future__ import annotations

import itertools
import json
import os
import random
import uuid
from pathlib import Path
from typing import IO

from locust import task
from locustfile import PacedUser

__all__ = ["StatefulUser"]

NAMES = ("Ada", "Zoë", "Linus", "Grace", "Alan", "José", "Edsger", "Barbara", "Dennis", "Ken")
_KNOWN_IDS = 1_000  # remember this many acknowledged ids to read back
_counter = itertools.count(1)
_known: list[str] = []
_acked: list[IO[str]] = []  # the acked log, opened on first use


def _acked_log() -> IO[str] | None:
    """``acked.jsonl`` beside the request log, or None when no request log is kept."""
    if not _acked:
        request_log = os.environ.get("CAUTIOUS_REQUEST_LOG", "")
        if not request_log:
            return None
        path = Path(request_log).with_name("acked.jsonl")
        _acked.append(path.open("a", encoding="utf-8", buffering=1))
    return _acked[0]


class StatefulUser(PacedUser):
    """One simulated client of the stateful sample."""

    @task(25)
    def write(self) -> None:
        """Create a user under an id this client made up; log it once acknowledged."""
        user_id = uuid.uuid4().hex
        name = f"{random.choice(NAMES)} {next(_counter)}"
        with self.client.put(
            f"/users/{user_id}", json={"name": name}, name="/users/[id]", catch_response=True
        ) as response:
            if response.status_code not in (200, 201):
                response.failure(f"status {response.status_code}")
                return
            response.success()
        log = _acked_log()
        if log is not None:
            log.write(json.dumps({"id": user_id, "name": name}, ensure_ascii=False) + "\n")
        _known.append(user_id)
        del _known[:-_KNOWN_IDS]

    @task(55)
    def read(self) -> None:
        """Read back a user written earlier (the front page until there is one)."""
        if not _known:
            self.client.get("/")
            return
        self.client.get(f"/users/{random.choice(_known)}", name="/users/[id]")

    @task(10)
    def newest(self) -> None:
        self.client.get("/users?limit=20", name="/users")

    @task(10)
    def index(self) -> None:
        self.client.get("/")
