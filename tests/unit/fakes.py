"""A fake cluster for the unit tests: the real sandbox, runner and journal on the fake backend.

Releases: ``v1`` (the cluster starts on it), ``v2`` (healthy), and the scripted bad ones below.
Deadlines are cut to fractions of a second; the fake answers at once, so a rollout of four
instances takes a few tens of milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cautious.backends.fake import Behaviour, FakeBackend, FakeLb
from cautious.cluster.sandbox import Sandbox
from cautious.config import Config, StrategyName
from cautious.deploy import DeployPipeline
from cautious.release import Release
from cautious.rollout.journal import Journal
from cautious.rollout.runner import RolloutResult, Runner
from cautious.rollout.strategies import make_plan

BEHAVIOURS = {
    "crash-on-start": Behaviour(exit_after_s=0.0, exit_code=3),
    "never-ready": Behaviour(ready=False),
    "errors-50pct": Behaviour(error_ratio=0.5),
    "errors-1pct": Behaviour(error_ratio=0.01),
    "also-errors-1pct": Behaviour(error_ratio=0.01),  # another build, just as good
    "dies-in-bake": Behaviour(exit_after_s=0.02),
    "fourth-start-hangs": Behaviour(startup_s=(0.0, 0.0, 0.0, 60.0)),
}
ROLLOUT = {
    "bake_s": 0.03,
    "ready_timeout_s": 0.3,
    "drain_timeout_s": 0.2,
    "stop_grace_s": 0,
    "canary_min_requests": 20,
    "canary_steps": [25, 100],
}
# The canary judge's bakes, cut like the other deadlines: a decisive bake may extend half a
# second, which at the simulated rate is thousands of canary requests.
CANARY = {"bake_s": 0.03, "max_extension_s": 0.5}
TRAFFIC_PER_S = 50_000.0  # simulated: requests cost microseconds, so bakes see plenty


def fake_config(
    tmp_path: Path, *, instances: int = 4, canary: dict[str, Any] | None = None, **rollout: Any
) -> Config:
    releases = ["v0", "v1", "v2", *BEHAVIOURS]
    return Config.model_validate(
        {
            "releases": {name: {} for name in releases},
            "cluster": {"name": "unit", "instances": instances},
            "rollout": {**ROLLOUT, **rollout},
            "canary": {**CANARY, **(canary or {})},
            "state_dir": str(tmp_path / "state"),
            "reports_dir": str(tmp_path / "reports"),
        }
    )


@dataclass
class FakeCluster:
    """A running fake cluster, and shortcuts to roll it out."""

    config: Config
    backend: FakeBackend
    sandbox: Sandbox
    journal: Journal
    said: list[str] = field(default_factory=list)

    @property
    def lb(self) -> FakeLb:
        assert self.backend.fake_lb is not None
        return self.backend.fake_lb

    def with_rollout(self, **rollout: Any) -> FakeCluster:
        """The same cluster, planned and gated with other rollout settings."""
        settings = self.config.rollout.model_copy(update=rollout)
        config = self.config.model_copy(update={"rollout": settings})
        sandbox = Sandbox(config, self.backend, say=self.said.append)
        return FakeCluster(config, self.backend, sandbox, self.journal, self.said)

    def releases(self) -> dict[str, str]:
        """Every instance's release, by slot."""
        return {item.name: item.release for item in self.backend.instances()}

    def release(self, label: str) -> Release:
        return self.sandbox.release(label)

    def runner(self) -> Runner:
        return Runner(self.sandbox, self.journal, say=self.said.append)

    def roll(self, to: str, strategy: StrategyName = "rolling", **kw: Any) -> RolloutResult:
        """Plan ``strategy`` from what runs now to release ``to``, and run it."""
        running = [item for item in self.backend.instances() if item.state == "running"]
        taken = {item.name for item in self.backend.instances()}
        free = [slot for slot in self.backend.slots() if slot not in taken]
        plan = make_plan(
            strategy, [item.name for item in running], free, self.config.rollout, self.config.canary
        )
        source = self.sandbox.release_by_digest(running[0].release, running[0].digest)
        return self.runner().run(plan, source, self.release(to), **kw)

    def pipeline(self) -> DeployPipeline:
        return DeployPipeline(self.config, say=self.said.append, sandbox=self.sandbox)


def fake_cluster(
    tmp_path: Path,
    *,
    up: str | None = "v1",
    traffic_per_s: float = TRAFFIC_PER_S,
    canary: dict[str, Any] | None = None,
    **rollout: Any,
) -> FakeCluster:
    """A fake cluster of four instances, up on release ``up`` (``None``: nothing running)."""
    config = fake_config(tmp_path, canary=canary, **rollout)
    said: list[str] = []
    backend = FakeBackend(
        config, say=said.append, behaviours=BEHAVIOURS, traffic_per_s=traffic_per_s
    )
    sandbox = Sandbox(config, backend, say=said.append)
    journal = sandbox.journal
    if up is not None:
        sandbox.up(config.cluster.instances, up)
    return FakeCluster(config, backend, sandbox, journal, said)
