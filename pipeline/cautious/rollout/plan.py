"""A plan: the ordered steps a strategy produces for a cluster — pure data, printable.

Steps name *slots* (instance names) and a release *role* (``to`` = the new release, ``from`` =
the one being replaced), never images, so a plan can be made, printed (``--dry-run``) and
tested without touching anything. The runner (``rollout.py``) gives them effect and works out
how to undo each one from what it saw before running it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

__all__ = [
    "READ_ONLY_OFF_UNDO",
    "Bake",
    "Plan",
    "ReadOnly",
    "ReleaseRole",
    "Retire",
    "SetWeights",
    "Shadow",
    "Start",
    "Step",
    "Switch",
]

ReleaseRole = Literal["from", "to"]


@dataclass(frozen=True)
class Retire:
    """Take instances out: drain, wait for in-flight requests, maint, SIGTERM.

    ``keep_serving``: first make sure another instance is UP to take the traffic (only
    stop-and-go takes everything out on purpose).
    """

    slots: tuple[str, ...]
    keep_serving: bool = True

    def describe(self) -> str:
        return f"retire {', '.join(self.slots)}: drain → wait in-flight → maint → stop"


@dataclass(frozen=True)
class Start:
    """Start ``role``'s release in slots; into rotation once ready, or held as a standby."""

    slots: tuple[str, ...]
    role: ReleaseRole = "to"
    in_rotation: bool = True

    def describe(self) -> str:
        where = "ready → in rotation" if self.in_rotation else "ready → held out of rotation"
        return f"start {', '.join(self.slots)} on the {self.role!r} release: {where}"


@dataclass(frozen=True)
class Switch:
    """Put ``into`` in rotation (and wait until the LB says UP), then drain ``out_of``."""

    into: tuple[str, ...]
    out_of: tuple[str, ...]

    def describe(self) -> str:
        return f"switch traffic to {', '.join(self.into)}; drain {', '.join(self.out_of)}"


@dataclass(frozen=True)
class SetWeights:
    """Give each slot an LB weight (putting ``enter`` slots in rotation): a canary step."""

    weights: tuple[tuple[str, int], ...]
    enter: tuple[str, ...] = ()
    percent: int = 0

    def describe(self) -> str:
        if self.percent >= 100:
            return "promote the canary: equal weights for every instance"
        shares = ", ".join(f"{slot}={weight}" for slot, weight in self.weights)
        return f"shift {self.percent} % of traffic to the canary (weights {shares})"


@dataclass(frozen=True)
class Bake:
    """Watch ``watch`` for ``seconds``: still running, still UP, errors within bounds.

    A canary bake (``judge_against``) asks the judge at every look and stops at a fail. The
    last one before promotion is decisive (``extend_s`` > 0): the canary must pass there, and
    the bake is extended up to ``extend_s`` while the judge lacks data.
    """

    seconds: float
    watch: tuple[str, ...]
    judge_against: tuple[str, ...] = ()  # canary: compare ``watch`` with these baselines
    extend_s: float = 0.0

    def describe(self) -> str:
        judged = f", judged against {', '.join(self.judge_against)}" if self.judge_against else ""
        decisive = (
            f"; must pass before promotion (extends up to {self.extend_s:g} s)"
            if self.extend_s
            else ""
        )
        return f"bake {self.seconds:g} s watching {', '.join(self.watch)}{judged}{decisive}"


READ_ONLY_OFF_UNDO = "read-only mode off"  # the rollback step that undoes ReadOnly(on=True)


@dataclass(frozen=True)
class ReadOnly:
    """Read-only mode on or off: while on, the LB answers writes 503 + Retry-After itself and
    the instances keep serving reads, so no data changes while releases are swapped."""

    on: bool

    def describe(self) -> str:
        if self.on:
            return "read-only mode on: the load balancer refuses writes (503, Retry-After)"
        return "read-only mode off: writes go through again"


@dataclass(frozen=True)
class Shadow:
    """Mirror idempotent requests to ``candidates`` (out of rotation) for ``seconds`` and
    compare their answers with what the serving release said."""

    seconds: float
    candidates: tuple[str, ...]

    def describe(self) -> str:
        return (
            f"shadow {', '.join(self.candidates)} for {self.seconds:g} s: mirror reads to it "
            "and compare its answers"
        )


Step = Retire | Start | Switch | SetWeights | Bake | ReadOnly | Shadow


@dataclass(frozen=True)
class Plan:
    """A strategy's steps for one cluster, from the instances it runs now."""

    strategy: str
    current: tuple[str, ...]
    steps: tuple[Step, ...]
    final: tuple[str, ...]  # the slots that run the new release when the plan has run

    def describe(self) -> list[str]:
        """Numbered lines for ``invoke deploy --dry-run``."""
        return [f"{index:2d}. {step.describe()}" for index, step in enumerate(self.steps, 1)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "current": list(self.current),
            "final": list(self.final),
            "steps": [
                {"kind": type(step).__name__.lower(), **asdict(step), "text": step.describe()}
                for step in self.steps
            ],
        }
