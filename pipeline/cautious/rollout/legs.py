"""Three-legged plans: expand, migrate, contract — each leg a full rollout with its own hooks.

A change that breaks the old release's assumptions (a renamed column) cannot ship in one
rollout without downtime. It ships in legs: support the new thing, migrate to it, remove the
old thing. Each leg here is:

1. its ``before`` hooks (a schema migration, a batched backfill), run in one-off containers of
   the leg's release with a timeout each;
2. a full rollout to the leg's release, measured and judged by its own claims;
3. its ``after`` hooks (dropping the old column once nothing reads it);
4. the data check: every acknowledged write is still there and consistent.

A failing leg rolls back that leg only and stops the plan: a failing ``before`` hook leaves the
cluster as the previous leg left it (nothing was rolled out), a failing rollout rolls itself
back, a failing ``after`` hook or data check rolls the leg's rollout back. Legs that never ran
are reported as skipped. Every hook run, every leg's outcome and the plan's end are journaled.

This module is the orchestration only; :class:`LegWorld` is what it asks of the world (the
deploy pipeline, the backend's one-off containers, the journal), so it is tested with fakes.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

__all__ = [
    "Hook",
    "HookRun",
    "HookWhen",
    "Leg",
    "LegOutcome",
    "LegRollout",
    "LegWorld",
    "LegsResult",
    "run_legs",
]

HookWhen = Literal["before", "after", "check"]
LegState = Literal["succeeded", "rolled-back", "failed", "skipped"]


@dataclass(frozen=True)
class Hook:
    """A one-off command of the leg's release image, bounded by ``timeout_s``."""

    name: str
    command: tuple[str, ...]
    timeout_s: float = 300.0

    def describe(self) -> str:
        return f"{self.name}: `{' '.join(self.command)}` (at most {self.timeout_s:g} s)"


@dataclass(frozen=True)
class Leg:
    """One leg: hooks before, a rollout to ``release``, hooks after, the data check."""

    name: str
    release: str
    before: tuple[Hook, ...] = ()
    after: tuple[Hook, ...] = ()
    check: Hook | None = None
    strategy: str | None = None  # None: the configured rollout strategy
    read_only: bool = False

    def describe(self) -> list[str]:
        """The leg's lines for ``deploy --dry-run``."""
        how = f"{self.strategy or 'configured'} rollout" + (
            " in read-only mode" if self.read_only else ""
        )
        lines = [f"leg {self.name}: {how} to {self.release}"]
        lines += [f"  before  {hook.describe()}" for hook in self.before]
        lines += [f"  roll out {self.release}, judged by the claims"]
        lines += [f"  after   {hook.describe()}" for hook in self.after]
        if self.check is not None:
            lines.append(f"  check   {self.check.describe()}")
        return lines


@dataclass(frozen=True)
class HookRun:
    """A hook as it ran: exit code (None when the timeout killed it), time, last output."""

    leg: str
    hook: str
    when: HookWhen
    release: str
    command: tuple[str, ...]
    exit_code: int | None
    seconds: float
    output: str = ""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def failure(self) -> str:
        what = "timed out" if self.exit_code is None else f"exited {self.exit_code}"
        tail = self.output.strip().splitlines()[-1:] or [""]
        return f"{self.when} hook {self.hook} {what}" + (f": {tail[0]}" if tail[0] else "")

    def to_dict(self) -> dict[str, Any]:
        return {
            "leg": self.leg,
            "hook": self.hook,
            "when": self.when,
            "release": self.release,
            "command": list(self.command),
            "exit_code": self.exit_code,
            "seconds": round(self.seconds, 3),
            "output": self.output,
        }


@dataclass(frozen=True)
class LegRollout:
    """What a leg's rollout (or its rollback) came to."""

    rollout_id: str | None  # None: nothing to do (the cluster already ran the release)
    succeeded: bool
    reason: str = ""
    verdict: str | None = None  # the measured verdict of the leg's claims, if measured
    deployed: bool = False  # failed, yet the cluster runs the release (a claim did not hold)


@dataclass(frozen=True)
class LegOutcome:
    """One leg's end: its state, why, its rollout and every hook it ran."""

    leg: str
    release: str
    state: LegState
    reason: str = ""
    rollout: LegRollout | None = None
    rollback: LegRollout | None = None
    hooks: tuple[HookRun, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        def rollout(item: LegRollout | None) -> dict[str, Any] | None:
            return None if item is None else item.__dict__.copy()

        return {
            "leg": self.leg,
            "release": self.release,
            "state": self.state,
            "reason": self.reason,
            "rollout": rollout(self.rollout),
            "rollback": rollout(self.rollback),
            "hooks": [run.to_dict() for run in self.hooks],
        }


@dataclass(frozen=True)
class LegsResult:
    """The plan's end: succeeded when every leg did, else stopped at the first that did not."""

    plan_id: str
    legs: tuple[LegOutcome, ...] = field(default_factory=tuple)

    @property
    def succeeded(self) -> bool:
        return all(leg.state == "succeeded" for leg in self.legs)

    @property
    def stopped_at(self) -> LegOutcome | None:
        return next((leg for leg in self.legs if leg.state in {"rolled-back", "failed"}), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "plan_id": self.plan_id,
            "succeeded": self.succeeded,
            "legs": [leg.to_dict() for leg in self.legs],
        }


class LegWorld(Protocol):
    """What running legs needs: hooks, rollouts, rollbacks and a journal."""

    def run_hook(self, leg: Leg, hook: Hook, when: HookWhen) -> HookRun:
        """Run ``hook`` in a one-off container of the leg's release; never raises for a
        failing or timed-out command (that is the HookRun's exit code)."""
        ...

    def roll_out(self, leg: Leg) -> LegRollout:
        """Deploy the leg's release (measured); a failed gate has already rolled it back."""
        ...

    def roll_back(self, leg: Leg) -> LegRollout:
        """Return the cluster to the release it ran before the leg's rollout."""
        ...

    def journal(self, kind: str, **fields: Any) -> None:
        """Append a record of ``kind`` (leg-begin, hook, leg-end, legs-end) to the journal."""
        ...


def run_legs(
    legs: Sequence[Leg], world: LegWorld, *, say: Callable[[str], None] = print
) -> LegsResult:
    """Run the legs in order; the first that fails is rolled back and the rest are skipped."""
    plan_id = f"legs-{uuid.uuid4().hex[:8]}"
    world.journal("legs-begin", plan_id=plan_id, legs=[leg.name for leg in legs])
    outcomes: list[LegOutcome] = []
    for index, leg in enumerate(legs):
        say(f"leg {index + 1}/{len(legs)}: {leg.name} → {leg.release}")
        world.journal("leg-begin", plan_id=plan_id, leg=leg.name, release=leg.release)
        outcome = _run_leg(leg, world, plan_id)
        world.journal("leg-end", plan_id=plan_id, **outcome.to_dict())
        outcomes.append(outcome)
        say(f"leg {leg.name}: {outcome.state}" + (f" ({outcome.reason})" if outcome.reason else ""))
        if outcome.state != "succeeded":
            outcomes += [
                LegOutcome(later.name, later.release, "skipped") for later in legs[index + 1 :]
            ]
            break
    result = LegsResult(plan_id, tuple(outcomes))
    world.journal("legs-end", plan_id=plan_id, succeeded=result.succeeded)
    return result


def _run_leg(leg: Leg, world: LegWorld, plan_id: str) -> LegOutcome:
    runs: list[HookRun] = []

    def hook(item: Hook, when: HookWhen) -> HookRun:
        run = world.run_hook(leg, item, when)
        world.journal("hook", plan_id=plan_id, **run.to_dict())
        runs.append(run)
        return run

    for item in leg.before:
        run = hook(item, "before")
        if not run.ok:  # nothing was rolled out: the cluster is as the last leg left it
            return LegOutcome(leg.name, leg.release, "failed", run.failure(), hooks=tuple(runs))
    rollout = world.roll_out(leg)
    if not rollout.succeeded:
        rollback = world.roll_back(leg) if rollout.deployed else None
        return LegOutcome(
            leg.name, leg.release, "rolled-back", rollout.reason, rollout, rollback, tuple(runs)
        )
    checks: list[tuple[Hook, HookWhen]] = [(item, "after") for item in leg.after]
    if leg.check is not None:
        checks.append((leg.check, "check"))
    for item, when in checks:
        run = hook(item, when)
        if not run.ok:
            rollback = world.roll_back(leg)
            return LegOutcome(
                leg.name, leg.release, "rolled-back", run.failure(), rollout, rollback, tuple(runs)
            )
    return LegOutcome(leg.name, leg.release, "succeeded", "", rollout, hooks=tuple(runs))
