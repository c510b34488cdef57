"""The journal: an append-only JSON-lines record of every rollout on a cluster.

One file per cluster (``<state_dir>/<cluster>/journal.jsonl``). A rollout writes a ``begin``
record (who, when, strategy, from/to release with digests, the instances and the plan), one
``step`` record per step (timestamps, outcome, detail, time to ready), and an ``end`` record
with the outcome and the release of every instance. A ``begin`` without an ``end`` is a rollout
whose orchestrator died; the next rollout finds it and converges the cluster first.

The lock beside it (``rollout.lock``) is an ``flock``: the kernel drops it when its holder
dies, even by SIGKILL, so a crash never leaves the cluster locked.
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import json
import math
import os
import socket
import statistics
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from cautious.exceptions import LockHeld

__all__ = [
    "Journal",
    "Outcome",
    "RolloutRecord",
    "StartupStats",
    "actor",
    "startup_stats",
]

Outcome = Literal["succeeded", "rolled-back", "aborted"]


def actor() -> str:
    """Who is deploying: an explicit CAUTIOUS_ACTOR, the CI's actor, or the local user."""
    for variable in ("CAUTIOUS_ACTOR", "GITHUB_ACTOR", "BUILD_USER_ID", "GITLAB_USER_LOGIN"):
        if os.environ.get(variable):
            return os.environ[variable]
    try:
        return f"{getpass.getuser()}@{socket.gethostname()}"
    except OSError:
        return "unknown"


@dataclass
class RolloutRecord:
    """One rollout read back from the journal: its begin, steps and (maybe) end."""

    id: str
    begin: dict[str, Any]
    steps: list[dict[str, Any]] = field(default_factory=list)
    end: dict[str, Any] | None = None

    @property
    def outcome(self) -> str:
        return str(self.end["outcome"]) if self.end else "unfinished"

    @property
    def from_release(self) -> str:
        return str(self.begin["from"]["label"])

    @property
    def to_release(self) -> str:
        return str(self.begin["to"]["label"])

    def summary(self) -> dict[str, Any]:
        """One row of ``invoke history``."""
        ended = self.end["time"] if self.end else None
        return {
            "id": self.id,
            "started": self.begin["time"],
            "duration_s": round(ended - self.begin["time"], 1) if ended else None,
            "who": self.begin["who"],
            "kind": self.begin.get("kind", "deploy"),
            "strategy": self.begin["strategy"],
            "from": self.from_release,
            "to": self.to_release,
            "outcome": self.outcome,
            "reason": (self.end or {}).get("reason", ""),
            "instances": (self.end or {}).get("instances", []),
        }


class Journal:
    """The journal and lock of one cluster."""

    def __init__(self, state_dir: Path, cluster: str) -> None:
        self.folder = state_dir / cluster
        self.path = self.folder / "journal.jsonl"
        self.lock_path = self.folder / "rollout.lock"

    # -- writing -----------------------------------------------------------------------------

    def begin(self, **fields: Any) -> str:
        """Open a rollout record; returns its id."""
        rollout_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
        self._append({"type": "begin", "id": rollout_id, "who": actor(), **fields})
        return rollout_id

    def step(self, rollout_id: str, **fields: Any) -> None:
        self._append({"type": "step", "id": rollout_id, **fields})

    def end(self, rollout_id: str, outcome: Outcome, **fields: Any) -> None:
        self._append({"type": "end", "id": rollout_id, "outcome": outcome, **fields})

    def _append(self, record: Mapping[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"time": time.time(), **record}, sort_keys=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")
            handle.flush()
            os.fsync(handle.fileno())  # the record must survive the SIGKILL that may follow

    # -- reading -----------------------------------------------------------------------------

    def rollouts(self) -> list[RolloutRecord]:
        """Every rollout, oldest first (a torn last line from a crash is skipped)."""
        if not self.path.is_file():
            return []
        records: dict[str, RolloutRecord] = {}
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            kind, rollout_id = entry.get("type"), entry.get("id")
            if kind == "begin":
                records[rollout_id] = RolloutRecord(rollout_id, entry)
            elif rollout_id in records and kind == "step":
                records[rollout_id].steps.append(entry)
            elif rollout_id in records and kind == "end":
                records[rollout_id].end = entry
        return list(records.values())

    def note(self, kind: str, **fields: Any) -> None:
        """A record beside the rollouts: a deploy's measurement, the legs of a plan."""
        self._append({"type": kind, **fields})

    def notes(self, kind: str) -> list[dict[str, Any]]:
        """Every record of ``kind`` written by :meth:`note`, oldest first."""
        if not self.path.is_file():
            return []
        found = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(entry, dict) and entry.get("type") == kind:
                found.append(entry)
        return found

    def unfinished(self) -> list[RolloutRecord]:
        return [record for record in self.rollouts() if record.end is None]

    def last_good_release(self, *, before: str | None = None) -> str | None:
        """The to-release of the newest succeeded rollout (that is not ``before``)."""
        for record in reversed(self.rollouts()):
            if record.outcome == "succeeded" and record.to_release != before:
                return record.to_release
        return None

    # -- locking -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the cluster's rollout lock, or raise LockHeld naming the holder."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with self.lock_path.open("a+", encoding="utf-8") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "another process"
                raise LockHeld(
                    f"a rollout is already running on cluster {self.folder.name!r} "
                    f"({holder}); wait for it to finish, then retry"
                ) from None
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()}, {actor()}, since {time.strftime('%H:%M:%S')}")
            handle.flush()
            try:
                yield
            finally:
                handle.truncate(0)
                fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass(frozen=True)
class StartupStats:
    """The distribution of time-to-ready (seeds/000: look at the tail, not the mean)."""

    release: str
    count: int
    min_s: float
    median_s: float
    p90_s: float
    p99_s: float
    max_s: float


def startup_stats(rollouts: list[RolloutRecord]) -> list[StartupStats]:
    """Per release, every instance's time to ready recorded by start steps."""
    by_release: dict[str, list[float]] = {}
    for record in rollouts:
        for step in record.steps:
            for sample in step.get("ready_s", []):
                by_release.setdefault(sample["release"], []).append(float(sample["seconds"]))
    return [
        StartupStats(
            release=release,
            count=len(values),
            min_s=min(values),
            median_s=statistics.median(values),
            p90_s=_quantile(values, 0.90),
            p99_s=_quantile(values, 0.99),
            max_s=max(values),
        )
        for release, values in sorted(by_release.items())
    ]


def _quantile(values: list[float], q: float) -> float:
    """Nearest-rank quantile: an observed value, never an interpolation below the tail."""
    ordered = sorted(values)
    rank = math.ceil(round(q * len(ordered), 9))  # round: 0.9 * 10 must be 9, not 9.000…2
    return ordered[min(max(rank, 1), len(ordered)) - 1]
