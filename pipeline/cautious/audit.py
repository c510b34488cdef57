"""``cautious audit``: was every change to the cluster made, and recorded, by Cautious?

It checks the journal against itself and against what runs:

- the hash chain: each record's ``prev`` is the SHA-256 of the line before it, so an edited,
  inserted or removed line breaks the chain at the next record (an edit of the very last line
  shows only with a key); with ``CAUTIOUS_AUDIT_KEY`` every record's HMAC, so a record forged
  with a recomputed chain is caught too;
- every live instance runs the image its slot's last journaled rollout (or ``sandbox.up``)
  left there: an image replaced under the same name and labels shows here (on ssh hosts: the
  release directory its ``current`` link names);
- no instance runs in a slot the journal says is empty (started outside a journaled rollout);
- nothing Cautious did not start runs on the cluster's network;
- every host answers (ssh): what runs on a host that does not is unknown, so it is a finding
  until it answers again (and a deploy refuses it, unless forced).

Chain breaks before a ``forced`` record were accepted by the person who forced that deploy (the
record names them) and are not reported again. While a rollout is unfinished the instances
are in motion, so they are compared once it is recovered.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from cautious.backends.base import Auditable, Backend, Instance, Occupant
from cautious.rollout.journal import Journal, audit_key, line_digest, record_mac

__all__ = ["FORCED_NOTE", "AuditResult", "Finding", "audit"]

FORCED_NOTE = "forced"
FindingKind = Literal["chain", "hmac", "image", "unjournaled", "stranger", "unreachable"]


@dataclass(frozen=True)
class Finding:
    """One drift: what changed, where, and why it is not what Cautious did."""

    kind: FindingKind
    subject: str  # a journal line ("line 7") or an instance or container name
    detail: str

    def line(self) -> str:
        return f"{self.kind}: {self.subject}: {self.detail}"


@dataclass(frozen=True)
class AuditResult:
    """What the audit checked and found (clean: no findings)."""

    records: int
    occupants: int
    findings: tuple[Finding, ...]
    notes: tuple[str, ...] = ()
    accepted: tuple[str, ...] = ()  # chain breaks before a forced deploy, which accepted them

    @property
    def clean(self) -> bool:
        return not self.findings

    def to_dict(self) -> dict[str, Any]:
        return {
            "clean": self.clean,
            "records": self.records,
            "occupants": self.occupants,
            "findings": [finding.__dict__ for finding in self.findings],
            "notes": list(self.notes),
            "accepted": list(self.accepted),
        }


@dataclass(frozen=True)
class _Slot:
    release: str
    digest: str


def audit(journal: Journal, backend: Backend) -> AuditResult:
    """Verify ``journal``'s chain and compare it with what ``backend``'s cluster runs."""
    records, chain = _verify_chain(journal.text(), audit_key())
    broken = {number for number, _ in chain}
    forced_at = max(
        (n for n, record in records if record.get("type") == FORCED_NOTE and n not in broken),
        default=0,
    )
    accepted = tuple(finding.line() for n, finding in chain if n < forced_at)
    findings = [finding for n, finding in chain if n > forced_at]
    instances = backend.instances()  # one look: on ssh, a round trip to every host
    findings += _unreachable(instances)
    notes: list[str] = []
    if isinstance(backend, Auditable):
        occupants = backend.occupants()
        findings += _strangers(occupants)
    else:
        occupants = _instances_as_occupants(instances)
        notes.append("this backend lists only its own instances: nothing else is looked for")
    unfinished = _unfinished([record for _, record in records])
    if unfinished:
        notes.append(f"rollout {unfinished} is unfinished: instances are compared after it")
    else:
        findings += _instance_drift(occupants, _expected_slots([r for _, r in records]))
    return AuditResult(len(records), len(occupants), tuple(findings), tuple(notes), accepted)


def _expected_slots(records: list[dict[str, Any]]) -> dict[str, _Slot]:
    """What the journal says runs in each slot: the last ``up`` or rollout end, replayed."""
    slots: dict[str, _Slot] = {}
    digests: dict[str, dict[str, str]] = {}  # rollout id → label → digest (older records)
    for record in records:
        kind = record.get("type")
        if kind == "begin":
            digests[str(record.get("id"))] = {
                side["label"]: side.get("digest", "")
                for side in (record.get("from"), record.get("to"))
                if isinstance(side, dict) and "label" in side
            }
        elif kind in ("up", "end"):
            labels = digests.get(str(record.get("id")), {})
            slots = {
                str(item["name"]): _Slot(
                    str(item.get("release", "")),
                    str(item.get("digest") or labels.get(str(item.get("release")), "")),
                )
                for item in record.get("instances", [])
                if isinstance(item, dict) and item.get("state", "running") == "running"
            }
    return slots


def _verify_chain(
    text: str, key: bytes | None
) -> tuple[list[tuple[int, dict[str, Any]]], list[tuple[int, Finding]]]:
    """The records (with their line numbers) and the chain's findings (with theirs)."""
    records: list[tuple[int, dict[str, Any]]] = []
    findings: list[tuple[int, Finding]] = []
    previous = ""
    for number, line in enumerate(text.splitlines(), 1):
        where = f"line {number}"
        record = _record(line)
        if record is None:
            if not _cut_short(line):
                findings.append((number, Finding("chain", where, "not a journal record")))
            previous = line
            continue
        expected = line_digest(previous) if number > 1 else ""
        if record.get("prev") != expected:
            findings.append((number, Finding("chain", where, _break(number))))
        if key is not None and record.get("mac") != record_mac(key, record):
            why = "unsigned" if "mac" not in record else "its HMAC does not match"
            findings.append((number, Finding("hmac", where, f"{why}: forged or edited")))
        records.append((number, record))
        previous = line
    return records, findings


def _break(number: int) -> str:
    if number == 1:
        return "the first record does not start the chain: lines before it were removed"
    return (
        f"'prev' is not the SHA-256 of line {number - 1}: line {number - 1} was edited, "
        "or lines were inserted or removed here"
    )


def _record(line: str) -> dict[str, Any] | None:
    try:
        value = json.loads(line)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _cut_short(line: str) -> bool:
    """A line a crash cut off mid-write: the start of a record whose JSON never closed."""
    try:
        json.loads(line)
    except json.JSONDecodeError as error:
        return line.startswith("{") and error.pos >= len(line.rstrip())
    except (ValueError, RecursionError):
        return False
    return False


def _unfinished(records: list[dict[str, Any]]) -> str | None:
    begun = [str(r.get("id")) for r in records if r.get("type") == "begin"]
    ended = {str(r.get("id")) for r in records if r.get("type") == "end"}
    return next((rollout for rollout in reversed(begun) if rollout not in ended), None)


def _instances_as_occupants(instances: list[Instance]) -> list[Occupant]:
    """What a backend that cannot see its hosts whole (ssh) says runs: its running instances,
    each with the digest its release directory names."""
    return [
        Occupant(item.name, item.digest, role="instance", slot=item.name)
        for item in instances
        if item.state == "running"
    ]


def _unreachable(instances: list[Instance]) -> list[Finding]:
    """One finding per host that does not answer, naming the slots it may be serving."""
    silent: dict[str, list[str]] = {}
    for item in instances:
        if item.state == "unreachable":
            silent.setdefault(item.host, []).append(item.name)
    return [
        Finding(
            "unreachable",
            host,
            f"does not answer, so what runs in {', '.join(slots)} is unknown; "
            "bring the host back, then audit again",
        )
        for host, slots in silent.items()
    ]


def _strangers(occupants: list[Occupant]) -> list[Finding]:
    return [
        Finding(
            "stranger",
            item.name,
            f"runs {_short(item.image)} on the cluster's network, but Cautious did not start it",
        )
        for item in occupants
        if not item.role
    ]


def _instance_drift(occupants: list[Occupant], slots: dict[str, _Slot]) -> list[Finding]:
    found: list[Finding] = []
    for item in sorted(occupants, key=lambda occupant: occupant.slot):
        if item.role != "instance":
            continue
        expected = slots.get(item.slot)
        if expected is None:
            found.append(
                Finding(
                    "unjournaled",
                    item.slot,
                    f"runs {_short(item.image)}, but no journaled rollout or sandbox.up "
                    "started an instance there",
                )
            )
        elif expected.digest and item.image != expected.digest:
            found.append(
                Finding(
                    "image",
                    item.slot,
                    f"runs image {_short(item.image)}, but the journal says "
                    f"{expected.release} ({_short(expected.digest)}): replaced outside Cautious",
                )
            )
    return found


def _short(digest: str) -> str:
    return digest.removeprefix("sha256:")[:12] or "an unknown image"
