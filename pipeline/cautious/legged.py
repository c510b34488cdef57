"""Three-legged deploys through the deploy chain: each leg a measured deploy with its claims.

Binds the orchestration (:mod:`cautious.rollout.legs`) to the world. Hooks run as one-off
containers of the leg's release through the backend. Each leg is a deploy of its release,
under load and measured into its own report folder (``<folder>/<n>-<leg>``), with the leg's
strategy and read-only mode; a leg whose rollout succeeded but whose claims did not hold has
failed, and is rolled back (measured too). The data check gets, at :data:`ACKED_PATH`, every
write the load generator saw acknowledged in any leg so far (the locustfile writes
``acked.jsonl`` beside its request log).

The cluster's lock is held by each leg's deploy, not across the plan: hooks run between legs.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from cautious.cluster.sandbox import Sandbox
from cautious.config import Config, HookConfig
from cautious.deploy import DeployPipeline, RolloutHook, Stage
from cautious.exceptions import ConfigError, SandboxError
from cautious.measure.session import Measured, measuring_hook
from cautious.rollout.legs import Hook, HookRun, HookWhen, Leg, LegRollout, LegsResult, run_legs
from cautious.rollout.runner import RolloutResult

__all__ = ["ACKED_NAME", "ACKED_PATH", "DeployedLegs", "deploy_legs", "legs_of"]

ACKED_PATH = "/cautious/acked.jsonl"
ACKED_NAME = "acked.jsonl"
_OUTPUT_LINES = 20
_CHECK_TIMEOUT_S = 300.0  # a leg's own check without a data_check section to take it from


def legs_of(config: Config) -> list[Leg]:
    """The configured legs, each with its data check (its own, else ``data_check``)."""
    default = config.data_check
    legs = []
    for item in config.legs:
        command = item.check or (default.command if default is not None else None)
        timeout_s = default.timeout_s if default is not None else _CHECK_TIMEOUT_S
        legs.append(
            Leg(
                name=item.name,
                release=item.release,
                before=tuple(_hook(hook) for hook in item.before),
                after=tuple(_hook(hook) for hook in item.after),
                check=Hook("data-check", tuple(command), timeout_s) if command else None,
                strategy=item.strategy,
                read_only=item.read_only,
            )
        )
    return legs


def _hook(item: HookConfig) -> Hook:
    return Hook(item.name, tuple(item.command), item.timeout_s)


class DeployedLegs:
    """The world of a three-legged plan on one cluster (a :class:`LegWorld`)."""

    def __init__(
        self,
        config: Config,
        folder: Path,
        *,
        say: Callable[[str], None],
        stage: Stage,
        progress: Callable[[str], None] = lambda _: None,
    ) -> None:
        self.config = config
        self.folder = folder
        self.say = say
        self.stage = stage
        self.progress = progress
        self.sandbox = Sandbox(config, say=say)
        self.journal_file = DeployPipeline(config, say=say, sandbox=self.sandbox).journal
        self.measured: list[Measured] = []
        self._runs = 0

    # -- LegWorld ----------------------------------------------------------------------------

    def run_hook(self, leg: Leg, hook: Hook, when: HookWhen) -> HookRun:
        release = self.sandbox.release(leg.release)
        self.say(f"{when} hook {hook.name} of leg {leg.name}: {' '.join(hook.command)}")
        done = self.sandbox.stateful_backend().run_once(
            release,
            hook.command,
            env={"CAUTIOUS_ACKED": ACKED_PATH, "CAUTIOUS_LEG": leg.name},
            timeout_s=hook.timeout_s,
            files={ACKED_PATH: self.acked()},
        )
        output = "\n".join(done.output.strip().splitlines()[-_OUTPUT_LINES:])
        return HookRun(
            leg.name,
            hook.name,
            when,
            leg.release,
            hook.command,
            done.exit_code,
            done.seconds,
            output,
        )

    def roll_out(self, leg: Leg) -> LegRollout:
        pipeline = self._pipeline(leg)
        result, measured = self._measured(
            pipeline, leg, "deploy", lambda hook: pipeline.deploy(leg.release, rollout=hook)
        )
        if result is None:
            return LegRollout(None, True, f"the cluster already runs {leg.release}")
        verdict = measured.verdict if measured is not None else None
        if not result.succeeded:
            return LegRollout(result.id, False, result.reason, verdict)
        if verdict != "pass":
            reason = (measured.report.get("verdict_reason") if measured else "") or "not measured"
            return LegRollout(result.id, False, f"claims: {reason}", verdict, deployed=True)
        return LegRollout(result.id, True, "", verdict)

    def roll_back(self, leg: Leg) -> LegRollout:
        pipeline = self._pipeline(leg)
        try:
            result, measured = self._measured(
                pipeline, leg, "rollback", lambda hook: pipeline.rollback(rollout=hook)
            )
        except SandboxError as exc:
            return LegRollout(None, False, f"rollback: {exc}")
        if result is None:
            return LegRollout(None, False, "rollback: nothing was rolled back")
        verdict = measured.verdict if measured is not None else None
        return LegRollout(result.id, result.succeeded, result.reason, verdict)

    def journal(self, kind: str, **fields: Any) -> None:
        self.journal_file.note(kind, **fields)

    # -- helpers -------------------------------------------------------------------------------

    def acked(self) -> bytes:
        """Every acknowledged write logged by the load of the legs so far."""
        logs = sorted(self.folder.glob(f"*/load/{ACKED_NAME}"))
        return b"".join(path.read_bytes() for path in logs)

    def _pipeline(self, leg: Leg) -> DeployPipeline:
        """The deploy chain with the leg's strategy and read-only mode, on the same backend."""
        rollout = self.config.rollout.model_copy(
            update={
                "strategy": leg.strategy or self.config.rollout.strategy,
                "read_only": leg.read_only,
            }
        )
        config = self.config.model_copy(update={"rollout": rollout})
        sandbox = Sandbox(config, self.sandbox.backend, say=self.say)
        return DeployPipeline(config, say=self.say, stage=self.stage, sandbox=sandbox)

    def _measured(
        self,
        pipeline: DeployPipeline,
        leg: Leg,
        kind: str,
        run: Callable[[RolloutHook], RolloutResult | None],
    ) -> tuple[RolloutResult | None, Measured | None]:
        """``run(hook)`` with a hook that measures the rollout into the leg's folder."""
        self._runs += 1
        suffix = "" if kind == "deploy" else f"-{kind}"
        folder = self.folder / f"{self._runs}-{leg.name}{suffix}"
        measured: list[Measured] = []
        result = run(measuring_hook(pipeline, folder, kind, measured, progress=self.progress))
        self.measured += measured
        return result, (measured[0] if measured else None)


def deploy_legs(
    config: Config,
    folder: Path,
    *,
    say: Callable[[str], None] = print,
    stage: Stage | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> LegsResult:
    """Run the configured three-legged plan on the cluster, each leg measured into ``folder``."""
    legs = legs_of(config)
    if not legs:
        raise ConfigError("the plan three-legged needs legs; declare them under 'legs'")
    staged: Stage = stage or (lambda _: nullcontext())
    with staged(f"sandbox {config.cluster.name}"):  # the first hook needs the dependencies up
        DeployPipeline(config, say=say, stage=staged).converge()
    world = DeployedLegs(config, folder, say=say, stage=staged, progress=progress)
    return run_legs(legs, world, say=say)
