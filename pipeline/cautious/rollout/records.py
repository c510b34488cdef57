"""What a rollout leaves behind, as records that cross stage boundaries.

The runner makes them; the journal stores the steps; the report, the chaos worker's result file
and the game day read them. Each is frozen and has ``to_dict`` / ``from_dict``, so every one of
those places writes and reads the same JSON with the same code:

- :class:`StepRecord`: one step as it ran (forward or rollback), with what it measured;
- :class:`TimelineEvent`: an instance entered a state (the chart's lanes);
- :class:`InstanceRecord`: an instance and its release, e.g. at the end of the run;
- :class:`RolloutSummary`: the whole rollout in plain data (release labels, not images).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, cast

from cautious.rollout.journal import Outcome
from cautious.verdict import Verdict

__all__ = [
    "InstanceRecord",
    "RolloutSummary",
    "StepOutcome",
    "StepPhase",
    "StepRecord",
    "TimelineEvent",
]

StepPhase = Literal["forward", "rollback"]
StepOutcome = Literal["ok", "failed"]

_STEP_FIELDS = frozenset(
    {"name", "phase", "started", "ended", "outcome", "kind", "instances", "detail", "verdict"}
)


@dataclass(frozen=True)
class StepRecord:
    """One step as it ran: a plan step going forward, or an undo step rolling back.

    ``kind`` and ``instances`` come from the plan step (``None`` and empty for undo steps);
    ``detail`` says why a step failed; ``verdict`` is a gate's own verdict when the step was a
    gate that judged; ``facts`` is what the step measured (times to ready, drain times, weights,
    bake figures). ``ended`` is None only for a step that was cut short.
    """

    name: str
    phase: StepPhase
    started: float
    ended: float | None
    outcome: StepOutcome
    kind: str | None = None
    instances: tuple[str, ...] = ()
    detail: str = ""
    verdict: Verdict | None = None
    facts: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The journal's step fields: ``facts`` at the top level, unset fields left out."""
        data: dict[str, Any] = {"name": self.name, "phase": self.phase, "started": self.started}
        if self.kind is not None:
            data.update(kind=self.kind, instances=list(self.instances))
        data.update(ended=self.ended, outcome=self.outcome)
        if self.detail:
            data["detail"] = self.detail
        if self.verdict is not None:
            data["verdict"] = self.verdict
        data.update(self.facts)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StepRecord:
        ended = data.get("ended")
        return cls(
            name=str(data["name"]),
            phase=cast(StepPhase, data.get("phase", "forward")),
            started=float(data["started"]),
            ended=None if ended is None else float(ended),
            outcome=cast(StepOutcome, data["outcome"]),
            kind=data.get("kind"),
            instances=tuple(str(name) for name in data.get("instances") or ()),
            detail=str(data.get("detail", "")),
            verdict=data.get("verdict"),
            facts={key: value for key, value in data.items() if key not in _STEP_FIELDS},
        )


@dataclass(frozen=True)
class TimelineEvent:
    """An instance entered ``state`` (starting, ready, standby, draining, stopped, failed, or a
    word a backend or a chaos experiment uses) at ``t``, running ``release``."""

    t: float
    instance: str
    release: str
    state: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TimelineEvent:
        return cls(
            t=float(data["t"]),
            instance=str(data["instance"]),
            release=str(data.get("release", "")),
            state=str(data["state"]),
        )


@dataclass(frozen=True)
class InstanceRecord:
    """An instance, the release it runs and the backend's state of it.

    On real hosts it also names the host and the release's directory there, so the journal
    says which files each machine ran; the digest is what ``cautious audit`` holds the running
    instance to (a label may be rebuilt under the same name).
    """

    name: str
    release: str
    state: str = "running"
    host: str = ""
    release_dir: str = ""
    digest: str = ""

    def to_dict(self) -> dict[str, Any]:
        found = {"name": self.name, "release": self.release, "state": self.state}
        where = {"host": self.host, "release_dir": self.release_dir, "digest": self.digest}
        return found | {key: value for key, value in where.items() if value}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InstanceRecord:
        where = {key: str(data.get(key, "")) for key in ("host", "release_dir", "digest")}
        state = str(data.get("state", "running"))
        return cls(str(data["name"]), str(data["release"]), state, **where)


@dataclass(frozen=True)
class RolloutSummary:
    """A rollout in plain data: from which release to which, how it ended and why, its steps,
    the instances' state changes and where every instance ended."""

    id: str
    strategy: str
    from_release: str | None
    to_release: str
    outcome: Outcome
    reason: str
    started: float | None
    ended: float | None
    steps: tuple[StepRecord, ...] = ()
    timeline: tuple[TimelineEvent, ...] = ()
    instances: tuple[InstanceRecord, ...] = ()

    def stopping_gate(self) -> StepRecord | None:
        """The forward step that failed and so stopped the rollout, if one did."""
        failed = [s for s in self.steps if s.phase == "forward" and s.outcome == "failed"]
        return failed[-1] if failed else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "strategy": self.strategy,
            "from_release": self.from_release,
            "to_release": self.to_release,
            "outcome": self.outcome,
            "reason": self.reason,
            "started": self.started,
            "ended": self.ended,
            "steps": [step.to_dict() for step in self.steps],
            "timeline": [event.to_dict() for event in self.timeline],
            "instances": [instance.to_dict() for instance in self.instances],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RolloutSummary:
        return cls(
            id=str(data["id"]),
            strategy=str(data["strategy"]),
            from_release=data.get("from_release"),
            to_release=str(data["to_release"]),
            outcome=cast(Outcome, data["outcome"]),
            reason=str(data.get("reason", "")),
            started=data.get("started"),
            ended=data.get("ended"),
            steps=tuple(StepRecord.from_dict(item) for item in data.get("steps") or ()),
            timeline=tuple(TimelineEvent.from_dict(item) for item in data.get("timeline") or ()),
            instances=tuple(InstanceRecord.from_dict(item) for item in data.get("instances") or ()),
        )
