"""The journal: an append-only JSON-lines record of every rollout on a cluster.

One file per cluster, ``journal.jsonl``, kept with the cluster by its backend's state store (a
labelled Docker volume, memory for the fake; ``<state_dir>/<cluster>/`` for a backend without
one), so every checkout that reaches the cluster reads one history. A rollout writes a ``begin``
record (who, when, strategy, from/to release with digests, the instances and the plan), one
``step`` record per step (timestamps, outcome, detail, time to ready), and an ``end`` record
with the outcome and the release of every instance. A ``begin`` without an ``end`` is a rollout
whose orchestrator died; the next rollout finds it and converges the cluster first.

Every record carries its actor and ``prev``, the SHA-256 of the line before it (a hash chain),
and with ``CAUTIOUS_AUDIT_KEY`` set an HMAC of itself: an edited line breaks the chain, a forged
one (chain recomputed) lacks a valid HMAC. :mod:`cautious.audit` checks both.

The lock beside it (``rollout.lock``) is created atomically and names its holder: who, which
machine, pid, CI run, since when. A holder on this machine whose process is gone is dead at
once (even after SIGKILL); one elsewhere renews the lock every few seconds and is taken for
dead after :data:`LEASE_S` without renewal. Either way the next rollout takes the lock over and
recovers the dead one's rollout.
"""

from __future__ import annotations

import contextlib
import dataclasses
import getpass
import hashlib
import hmac
import json
import math
import os
import socket
import statistics
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from cautious import redaction
from cautious.backends.base import StateStore
from cautious.backends.state import DirectoryStore, store_of
from cautious.exceptions import CautiousError, ConfigError, LockHeld
from cautious.inputs import clip, load_json

if TYPE_CHECKING:
    from cautious.config import Config

__all__ = [
    "JOURNAL_FILE",
    "LEASE_S",
    "Holder",
    "Journal",
    "Outcome",
    "RolloutRecord",
    "StartupStats",
    "actor",
    "audit_key",
    "line_digest",
    "record_mac",
    "startup_stats",
]

Outcome = Literal["succeeded", "rolled-back", "aborted"]
_MAX_JOURNAL_BYTES = 256 * 1024 * 1024
JOURNAL_FILE = "journal.jsonl"
_LOCK_FILE = "rollout.lock"
_MAX_LOCK_BYTES = 4096
_BEAT_S = 5.0  # how often a holder renews the lock
_SETTLE_S = 1.0  # how long a lock without a holder record may be a creator mid-write
LEASE_S = 60.0  # a holder on another machine silent this long is taken for dead
# The last line this process wrote to each journal whose lock it holds (nobody else writes
# then): saves reading the whole journal for every record where a read costs an engine call.
_last_lines: dict[str, str | None] = {}
_CI_RUNS = (  # where a CI system says which run this is
    (
        "GITHUB_RUN_ID",
        lambda env: (
            f"{env.get('GITHUB_SERVER_URL', 'https://github.com')}/"
            f"{env.get('GITHUB_REPOSITORY', '')}/actions/runs/{env['GITHUB_RUN_ID']}"
        ),
    ),
    ("BUILD_URL", lambda env: env["BUILD_URL"]),
    ("CI_JOB_URL", lambda env: env["CI_JOB_URL"]),
)


def actor() -> str:
    """Who is deploying: an explicit CAUTIOUS_ACTOR, the CI's actor, or the local user."""
    for variable in ("CAUTIOUS_ACTOR", "GITHUB_ACTOR", "BUILD_USER_ID", "GITLAB_USER_LOGIN"):
        if os.environ.get(variable):
            return os.environ[variable]
    try:
        return f"{getpass.getuser()}@{socket.gethostname()}"
    except OSError:
        return "unknown"


def audit_key() -> bytes | None:
    """The HMAC key of journal records (``CAUTIOUS_AUDIT_KEY``), if one is set."""
    key = os.environ.get("CAUTIOUS_AUDIT_KEY", "")
    return key.encode() if key else None


def line_digest(line: str) -> str:
    """What the next record's ``prev`` holds: the SHA-256 of this line's text."""
    return hashlib.sha256(line.encode()).hexdigest()


def record_mac(key: bytes, record: Mapping[str, Any]) -> str:
    """The HMAC-SHA-256 of a record without its ``mac`` field, in its journal form."""
    body = json.dumps({k: v for k, v in record.items() if k != "mac"}, sort_keys=True)
    return hmac.new(key, body.encode(), hashlib.sha256).hexdigest()


def _machine() -> str:
    """This machine and PID namespace: where a holder's pid can be looked up."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = ""
    return f"{socket.gethostname()} {namespace}"


def _ci_run() -> str:
    for variable, describe in _CI_RUNS:
        if os.environ.get(variable):
            return describe(os.environ)
    return ""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


@dataclass(frozen=True)
class Holder:
    """Who holds a cluster's rollout lock: what the lock file says, and what a refusal names."""

    who: str
    host: str
    pid: int
    since: float
    beat: float  # last renewal
    machine: str = ""
    ci_run: str = ""

    @classmethod
    def me(cls) -> Holder:
        now = time.time()
        return cls(actor(), socket.gethostname(), os.getpid(), now, now, _machine(), _ci_run())

    @classmethod
    def parse(cls, text: str) -> Holder | None:
        try:
            data = json.loads(text)
            return cls(**data) if isinstance(data, dict) else None
        except (ValueError, TypeError):
            return None

    def text(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True)

    def dead(self, now: float) -> bool:
        """Gone: its process, when it ran on this machine; else its renewals."""
        if self.machine == _machine():
            return not _alive(self.pid)
        return now - self.beat > LEASE_S

    def describe(self) -> str:
        since = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(self.since))
        run = f", CI run {self.ci_run}" if self.ci_run else ""
        return f"held by {self.who} on {self.host}, pid {self.pid}{run}, since {since}"


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
    """The journal and lock of one cluster, in ``store`` (default: ``state_dir/cluster``)."""

    def __init__(self, state_dir: Path, cluster: str, store: StateStore | None = None) -> None:
        self.cluster = cluster
        self.folder = state_dir / cluster
        self.path = self.folder / JOURNAL_FILE  # where the default store keeps them
        self.lock_path = self.folder / _LOCK_FILE
        self.store = store or DirectoryStore(self.folder)
        self.location = f"{self.store.where}/{JOURNAL_FILE}"

    @classmethod
    def of(cls, config: Config, backend: object) -> Journal:
        """The journal kept with the cluster ``backend`` runs (see :func:`store_of`)."""
        folder = config.path(config.state_dir) / config.cluster.name
        return cls(config.path(config.state_dir), config.cluster.name, store_of(backend, folder))

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
        """Chain the record to the last line, sign it when a key is set, append it durably
        (it must survive the SIGKILL that may follow)."""
        torn = ""
        last = _last_lines.get(self.location)
        if last is None:
            text = self.text()
            last = text.splitlines()[-1] if text else ""
            torn = "\n" if text and not text.endswith("\n") else ""  # a crash cut it short
        body = redaction.redact_data({"time": time.time(), "actor": actor(), **record})
        body["prev"] = line_digest(last) if last else ""
        key = audit_key()
        if key is not None:
            body["mac"] = record_mac(key, body)
        line = json.dumps(body, sort_keys=True)
        self.store.append(JOURNAL_FILE, torn + line + "\n")
        if self.location in _last_lines:
            _last_lines[self.location] = line

    # -- reading -----------------------------------------------------------------------------

    def text(self) -> str:
        """The journal's raw text, as stored."""
        return self.store.read(JOURNAL_FILE, _MAX_JOURNAL_BYTES)

    def entries(self) -> list[dict[str, Any]]:
        """Every record in the journal, oldest first, each checked.

        A line that is not JSON at all is skipped: the torn end of a write cut short by a
        crash. Any other line that is not a record Cautious writes is bad input (exit 2) naming
        its line: the journal is only ever written by Cautious, so it was edited or damaged.
        """
        found: list[dict[str, Any]] = []
        for number, line in enumerate(self.text().splitlines(), 1):
            where = f"{clip(self.location, 80)}:{number}"
            try:
                entry = load_json(line, where) if line.strip() else None
            except ConfigError:
                if _torn(line):
                    continue
                raise
            problem = _problem(entry) if entry is not None else None
            if problem:
                raise ConfigError(
                    f"{where}: {problem}; the journal is written only by Cautious: "
                    "restore it, or move it aside to start a new history"
                )
            if entry is not None:
                found.append(entry)
        return found

    def rollouts(self) -> list[RolloutRecord]:
        """Every rollout, oldest first (a torn last line from a crash is skipped)."""
        records: dict[str, RolloutRecord] = {}
        for entry in self.entries():
            kind, rollout_id = entry["type"], str(entry.get("id"))
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
        return [entry for entry in self.entries() if entry["type"] == kind]

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
    def lock(self) -> Iterator[Holder]:
        """Hold the cluster's rollout lock, or raise LockHeld naming the holder.

        A dead holder's lock is taken over (its unfinished rollout is then recovered by the
        caller, as after any crash); a live holder's never is.
        """
        me = Holder.me()
        if not self.store.create(_LOCK_FILE, me.text()):
            holder = self._holder()
            if holder is not None and not holder.dead(time.time()):
                raise self._held(holder)
            self.store.replace(_LOCK_FILE, me.text())
            now_held = self.store.read(_LOCK_FILE, _MAX_LOCK_BYTES)
            if now_held != me.text():  # another caller took the dead holder's lock over too
                raise self._held(Holder.parse(now_held))
        stop = threading.Event()
        renewer = threading.Thread(
            target=self._renew, args=(me, stop), name="cautious-lock", daemon=True
        )
        renewer.start()
        _last_lines[self.location] = None
        try:
            yield me
        finally:
            _last_lines.pop(self.location, None)
            stop.set()
            renewer.join(_BEAT_S * 2)
            self.store.remove(_LOCK_FILE)

    def _holder(self) -> Holder | None:
        """The lock's holder; None for a lock that is not a holder record (an older version's
        or a damaged one) once a creator has had time to write its record."""
        holder = Holder.parse(self.store.read(_LOCK_FILE, _MAX_LOCK_BYTES))
        if holder is None:
            time.sleep(_SETTLE_S)  # once: a creator writes its record right after the create
            holder = Holder.parse(self.store.read(_LOCK_FILE, _MAX_LOCK_BYTES))
        return holder

    def _held(self, holder: Holder | None) -> LockHeld:
        named = holder.describe() if holder else "held by another process"
        return LockHeld(
            f"a rollout is already running on cluster {self.cluster!r} ({named}); "
            "wait for it to finish, then retry"
        )

    def _renew(self, me: Holder, stop: threading.Event) -> None:
        """Renew the lock until ``stop``: a holder elsewhere proves it is alive by renewing."""
        while not stop.wait(_BEAT_S):
            with contextlib.suppress(CautiousError, OSError):  # the next renewal retries
                self.store.replace(_LOCK_FILE, dataclasses.replace(me, beat=time.time()).text())


def _torn(line: str) -> bool:
    """Whether a line is cut-off JSON (rather than JSON that is refused for its content)."""
    try:
        json.loads(line)
    except json.JSONDecodeError:
        return True
    except (ValueError, RecursionError):
        return False
    return False


def _problem(entry: Any) -> str | None:
    """What makes a line not a journal record, or None. Rollout records (begin, step, end)
    are checked field by field; records of other types belong to their own readers."""
    if not isinstance(entry, dict) or not isinstance(entry.get("type"), str):
        return "not a journal record (a JSON object with a 'type')"
    if not _finite(entry.get("time")):
        return "'time' is not a number of seconds"
    kind = entry["type"]
    if kind in ("begin", "step", "end") and not isinstance(entry.get("id"), str):
        return f"a {kind} record without a text 'id'"
    checks = {
        "begin": [
            (_text(entry.get("who")) and _text(entry.get("strategy")), "'who' and 'strategy'"),
            (_release(entry.get("from")) and _release(entry.get("to")), "'from' and 'to'"),
            (_optional_list(entry, "instances"), "'instances'"),
        ],
        "step": [
            (all(map(_ready_sample, _list(entry.get("ready_s", [])))), "'ready_s'"),
            (_text(entry.get("phase", "")), "'phase'"),
        ],
        "end": [
            (entry.get("outcome") in get_args(Outcome), "'outcome'"),
            (_text(entry.get("reason", "")), "'reason'"),
            (_optional_list(entry, "instances"), "'instances'"),
        ],
    }
    for passed, fields in checks.get(kind, []):
        if not passed:
            return f"the {kind} record has {fields} unlike any Cautious writes"
    return None


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _text(value: object) -> bool:
    return isinstance(value, str)


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else [None]


def _release(value: object) -> bool:
    return isinstance(value, dict) and _text(value.get("label")) and _text(value.get("digest", ""))


def _optional_list(entry: dict[str, Any], key: str) -> bool:
    items = entry.get(key, [])
    return isinstance(items, list) and all(
        isinstance(item, dict) and _text(item.get("name", "")) and _text(item.get("state", ""))
        for item in items
    )


def _ready_sample(sample: object) -> bool:
    return (
        isinstance(sample, dict) and _text(sample.get("release")) and _finite(sample.get("seconds"))
    )


@dataclass(frozen=True)
class StartupStats:
    """The distribution of time-to-ready (the tail decides, not the mean)."""

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
