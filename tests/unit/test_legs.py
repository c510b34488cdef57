"""Three-legged plans on a scripted world: hooks, rollouts, rollbacks, the journal."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cautious.rollout.legs import Hook, HookRun, HookWhen, Leg, LegRollout, run_legs

CHECK = Hook("data", ("hooks", "check"))
LEGS = [
    Leg("expand", "v2-expand", before=(Hook("schema", ("hooks", "expand")),), check=CHECK),
    Leg("migrate", "v2-migrate", before=(Hook("backfill", ("hooks", "backfill")),), check=CHECK),
    Leg("contract", "v2", after=(Hook("drop", ("hooks", "contract")),), check=CHECK),
]


@dataclass
class World:
    """Scripted: hooks named in ``failing`` exit 1, releases in ``rolled_back`` roll back."""

    failing: set[tuple[str, str]] = field(default_factory=set)  # (leg, hook)
    rolled_back: set[str] = field(default_factory=set)
    running: str = "v1"
    events: list[str] = field(default_factory=list)
    records: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    _previous: list[str] = field(default_factory=list)

    def run_hook(self, leg: Leg, hook: Hook, when: HookWhen) -> HookRun:
        self.events.append(f"{when} {hook.name} on {leg.release}")
        code = 1 if (leg.name, hook.name) in self.failing else 0
        return HookRun(leg.name, hook.name, when, leg.release, hook.command, code, 0.5, "done")

    def roll_out(self, leg: Leg) -> LegRollout:
        self.events.append(f"roll out {leg.release}")
        if leg.release in self.rolled_back:
            return LegRollout("r-bad", False, "bake: errors above the bound")
        self._previous.append(self.running)
        self.running = leg.release
        return LegRollout(f"r-{leg.name}", True, verdict="pass")

    def roll_back(self, leg: Leg) -> LegRollout:
        self.running = self._previous.pop()
        self.events.append(f"roll back to {self.running}")
        return LegRollout(f"rb-{leg.name}", True)

    def journal(self, kind: str, **fields: Any) -> None:
        self.records.append((kind, fields))


def test_three_legs_run_their_hooks_around_their_rollouts_in_order() -> None:
    world = World()
    result = run_legs(LEGS, world, say=lambda _: None)
    assert result.succeeded and world.running == "v2"
    assert world.events == [
        "before schema on v2-expand",
        "roll out v2-expand",
        "check data on v2-expand",
        "before backfill on v2-migrate",
        "roll out v2-migrate",
        "check data on v2-migrate",
        "roll out v2",
        "after drop on v2",
        "check data on v2",
    ]
    kinds = [kind for kind, _ in world.records]
    assert kinds[0] == "legs-begin" and kinds[-1] == "legs-end"
    assert kinds.count("leg-end") == 3 and kinds.count("hook") == 6


def test_a_failing_before_hook_stops_the_plan_without_rolling_anything_out() -> None:
    world = World(failing={("migrate", "backfill")})
    result = run_legs(LEGS, world, say=lambda _: None)
    assert not result.succeeded and world.running == "v2-expand"
    assert [leg.state for leg in result.legs] == ["succeeded", "failed", "skipped"]
    assert result.stopped_at is not None
    assert result.stopped_at.reason == "before hook backfill exited 1: done"
    assert "roll out v2-migrate" not in world.events


def test_a_rolled_back_rollout_stops_the_plan() -> None:
    world = World(rolled_back={"v2-migrate"})
    result = run_legs(LEGS, world, say=lambda _: None)
    assert [leg.state for leg in result.legs] == ["succeeded", "rolled-back", "skipped"]
    assert result.legs[1].reason == "bake: errors above the bound"
    assert world.running == "v2-expand"


def test_a_failing_after_hook_rolls_back_that_leg_only() -> None:
    world = World(failing={("contract", "drop")})
    result = run_legs(LEGS, world, say=lambda _: None)
    assert [leg.state for leg in result.legs] == ["succeeded", "succeeded", "rolled-back"]
    assert world.running == "v2-migrate"
    assert world.events[-1] == "roll back to v2-migrate"
    assert result.legs[2].rollback == LegRollout("rb-contract", True)


def test_a_failing_data_check_rolls_back_the_leg() -> None:
    world = World(failing={("expand", "data")})
    result = run_legs(LEGS, world, say=lambda _: None)
    assert [leg.state for leg in result.legs] == ["rolled-back", "skipped", "skipped"]
    assert result.legs[0].reason.startswith("check hook data exited 1")
    assert world.running == "v1"


def test_a_timed_out_hook_says_so() -> None:
    run = HookRun("m", "backfill", "before", "v2", ("x",), None, 300.0)
    assert not run.ok and run.failure() == "before hook backfill timed out"


def test_a_leg_describes_itself_for_a_dry_run() -> None:
    lines = Leg(
        "contract", "v2", after=(Hook("drop", ("hooks.py", "contract"), 60),), read_only=True
    ).describe()
    assert lines[0] == "leg contract: configured rollout in read-only mode to v2"
    assert lines[-1] == "  after   drop: `hooks.py contract` (at most 60 s)"


def test_a_leg_whose_claims_fail_after_its_rollout_is_rolled_back() -> None:
    class ClaimsFail(World):
        def roll_out(self, leg: Leg) -> LegRollout:
            done = super().roll_out(leg)
            if leg.name != "migrate":
                return done
            return LegRollout(done.rollout_id, False, "claims: p99 above 1 s", "fail", True)

    world = ClaimsFail()
    result = run_legs(LEGS, world, say=lambda _: None)
    assert [leg.state for leg in result.legs] == ["succeeded", "rolled-back", "skipped"]
    assert world.running == "v2-expand" and world.events[-1] == "roll back to v2-expand"
