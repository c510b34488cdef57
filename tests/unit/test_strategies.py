"""Every strategy's plan, as pure data: what it touches, in which order, ending where."""

from __future__ import annotations

import pytest
from cautious.config import CanaryConfig, RolloutConfig
from cautious.exceptions import ConfigError
from cautious.rollout.plan import Bake, Retire, SetWeights, Shadow, Start, Switch
from cautious.rollout.strategies import MAX_WEIGHT, canary_weights, make_plan

CURRENT = ["app-1", "app-2", "app-3", "app-4"]
FREE = ["app-5", "app-6", "app-7", "app-8", "app-9"]


def rollout(**values: object) -> RolloutConfig:
    return RolloutConfig.model_validate({"bake_s": 3, **values})


def test_rolling_replaces_one_instance_at_a_time_in_place() -> None:
    plan = make_plan("rolling", CURRENT, FREE, rollout())
    assert plan.steps[:3] == (Retire(("app-1",)), Start(("app-1",)), Bake(3, ("app-1",)))
    assert [type(step) for step in plan.steps] == [Retire, Start, Bake] * 4
    assert plan.final == tuple(CURRENT)


def test_rolling_batches_never_exceed_max_unavailable() -> None:
    plan = make_plan("rolling", CURRENT, FREE, rollout(batch_size=3, max_unavailable=2))
    retired = [step.slots for step in plan.steps if isinstance(step, Retire)]
    assert retired == [("app-1", "app-2"), ("app-3", "app-4")]


def test_rolling_takes_batches_as_large_as_allowed() -> None:
    plan = make_plan("rolling", CURRENT, FREE, rollout(batch_size=4, max_unavailable=4))
    assert plan.steps == (Retire(tuple(CURRENT)), Start(tuple(CURRENT)), Bake(3, tuple(CURRENT)))


def test_stop_and_go_takes_everything_out_then_starts_everything() -> None:
    plan = make_plan("stop-and-go", CURRENT, FREE, rollout())
    assert plan.steps == (
        Retire(tuple(CURRENT), keep_serving=False),
        Start(tuple(CURRENT)),
        Bake(3, tuple(CURRENT)),
    )


def test_only_stop_and_go_may_take_every_serving_instance_out() -> None:
    for strategy in ("rolling", "blue-green", "canary"):
        plan = make_plan(strategy, CURRENT, FREE, rollout())  # type: ignore[arg-type]
        assert all(step.keep_serving for step in plan.steps if isinstance(step, Retire))


def test_blue_green_warms_a_full_green_set_before_switching() -> None:
    plan = make_plan("blue-green", CURRENT, FREE, rollout())
    green = tuple(FREE[:4])
    assert plan.steps == (
        Start(green, in_rotation=False),
        Switch(into=green, out_of=tuple(CURRENT)),
        Bake(3, green),
        Retire(tuple(CURRENT)),
    )
    assert plan.final == green


def test_blue_green_needs_a_free_slot_per_instance() -> None:
    with pytest.raises(ConfigError, match="4 needed, 2 available"):
        make_plan("blue-green", CURRENT, FREE[:2], rollout())


def test_canary_shifts_weight_in_steps_judging_each_then_promotes() -> None:
    plan = make_plan("canary", CURRENT, FREE, rollout(canary_steps=[10, 50, 100]))
    kinds = [type(step) for step in plan.steps]
    assert kinds[:5] == [Start, SetWeights, Bake, SetWeights, Bake]
    assert plan.steps[0] == Start(("app-5",), in_rotation=False)
    first, second = plan.steps[1], plan.steps[3]
    assert isinstance(first, SetWeights) and isinstance(second, SetWeights)
    assert (first.percent, first.enter) == (10, ("app-5",))
    assert (second.percent, second.enter) == (50, ())
    judged = plan.steps[2]
    assert isinstance(judged, Bake) and judged.judge_against == tuple(CURRENT)
    promote = plan.steps[5]
    assert isinstance(promote, SetWeights) and promote.percent == 100
    assert {weight for _, weight in promote.weights} == {1}
    assert plan.steps[-1] == Retire(("app-5",))
    replaced = [step.slots for step in plan.steps[6:-1] if isinstance(step, Start)]
    assert replaced == [(slot,) for slot in CURRENT]


def test_a_canary_going_straight_to_100_enters_rotation_at_promotion() -> None:
    plan = make_plan("canary", CURRENT, FREE, rollout(canary_steps=[100]))
    promote = plan.steps[1]
    assert isinstance(promote, SetWeights) and promote.enter == ("app-5",)


@pytest.mark.parametrize(
    ("percent", "canaries", "baselines"),
    [(5, 1, 3), (25, 1, 3), (50, 1, 3), (10, 2, 8), (90, 1, 1)],
)
def test_canary_weights_send_the_asked_share_of_traffic(
    percent: int, canaries: int, baselines: int
) -> None:
    canary, baseline = canary_weights(percent, canaries, baselines)
    assert 1 <= canary <= MAX_WEIGHT and 1 <= baseline <= MAX_WEIGHT
    share = canary * canaries / (canary * canaries + baseline * baselines)
    assert share == pytest.approx(percent / 100, abs=0.01)


def test_a_plan_needs_running_instances() -> None:
    with pytest.raises(ConfigError, match=r"sandbox\.up"):
        make_plan("rolling", [], FREE, rollout())


def test_every_plan_prints_one_numbered_line_per_step() -> None:
    for strategy in ("rolling", "stop-and-go", "blue-green", "canary"):
        plan = make_plan(strategy, CURRENT, FREE, rollout())  # type: ignore[arg-type]
        lines = plan.describe()
        assert len(lines) == len(plan.steps)
        assert lines[0].startswith(" 1. ")
        assert plan.to_dict()["steps"][0]["text"] == plan.steps[0].describe()


def test_only_the_last_judged_canary_bake_must_pass_and_may_extend() -> None:
    judge = CanaryConfig(bake_s=7, max_extension_s=40)
    plan = make_plan("canary", CURRENT, FREE, rollout(canary_steps=[5, 25, 50, 100]), judge)
    bakes = [step for step in plan.steps if isinstance(step, Bake) and step.judge_against]
    assert [(bake.seconds, bake.extend_s) for bake in bakes] == [(7, 0), (7, 0), (7, 40)]
    assert "must pass before promotion (extends up to 40 s)" in bakes[-1].describe()


def test_read_only_stop_and_go_starts_beside_the_old_release_and_refuses_writes_meanwhile() -> None:
    plan = make_plan(
        "stop-and-go", ["a-1", "a-2"], ["a-3", "a-4", "a-5"], RolloutConfig(read_only=True)
    )
    assert [type(step).__name__ for step in plan.steps] == [
        "ReadOnly",
        "Start",
        "Switch",
        "ReadOnly",
        "Bake",
        "Retire",
    ]
    assert plan.final == ("a-3", "a-4")
    assert plan.steps[0].describe().startswith("read-only mode on")


def test_a_shadowed_canary_answers_mirrored_reads_before_it_gets_traffic() -> None:
    canary = CanaryConfig(shadow=True, shadow_s=15)
    plan = make_plan("canary", ["a-1", "a-2"], ["a-3"], RolloutConfig(), canary)
    assert plan.steps[0] == Start(("a-3",), in_rotation=False)
    assert plan.steps[1] == Shadow(15, ("a-3",))
    assert isinstance(plan.steps[2], SetWeights)
