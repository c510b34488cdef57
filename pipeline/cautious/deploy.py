"""The deploy chain: test → build → sandbox → rollout, each stage gating the next.

In a chained pipeline, a failing stage stops the chain before anything later
happens: failing tests build nothing, a failing build touches no instance. The whole chain holds
the cluster's lock, so a second deploy is refused at once rather than after its tests.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from cautious.audit import FORCED_NOTE, audit
from cautious.backends import Instance
from cautious.cluster.sandbox import Sandbox
from cautious.config import Config, StrategyName
from cautious.exceptions import ConfigError, Drifted, SandboxError
from cautious.inputs import clip
from cautious.release import Release
from cautious.rollout.plan import Plan
from cautious.rollout.runner import RolloutResult, Runner, recover
from cautious.rollout.strategies import make_plan

__all__ = ["Converged", "DeployPipeline", "StageFailed"]

_TEST_TIMEOUT_S = 1_800


class StageFailed(SandboxError):
    """A stage of the chain failed; the later stages did not run."""


Stage = Callable[[str], AbstractContextManager[None]]
RolloutHook = Callable[["Prepared", str], RolloutResult]


@contextlib.contextmanager
def _quiet_stage(name: str) -> Iterator[None]:
    yield


@dataclass
class Prepared:
    """Everything a rollout needs, decided before it starts."""

    plan: Plan
    from_release: Release
    to_release: Release


@dataclass(frozen=True)
class Converged:
    """What :meth:`DeployPipeline.converge` had to do to put every slot on one release."""

    release: str
    recovered: int  # interrupted rollouts finished first
    rolled: tuple[str, ...]  # instances rolled over from another build
    started: tuple[str, ...]  # slots filled (or emptied) to reach the configured count


class DeployPipeline:
    """Deploys and rollbacks of one cluster, with its sandbox and journal."""

    def __init__(
        self,
        config: Config,
        *,
        say: Callable[[str], None] = print,
        stage: Stage = _quiet_stage,
        sandbox: Sandbox | None = None,
    ) -> None:
        self.config = config
        self.say = say
        self.stage = stage
        self.sandbox = sandbox or Sandbox(config, say=say)
        self.journal = self.sandbox.journal

    # -- planning ----------------------------------------------------------------------------

    def dry_run(self) -> Plan:
        """The plan the next deploy would follow; touches nothing."""
        running = [item.name for item in self._running()]
        current = running or self.sandbox.backend.slots()[: self.config.cluster.instances]
        return self._plan(current)

    def _plan(self, current: list[str], strategy: StrategyName | None = None) -> Plan:
        taken = {item.name for item in self.sandbox.backend.instances()} | set(current)
        free = [slot for slot in self.sandbox.backend.slots() if slot not in taken]
        chosen = strategy or self.config.rollout.strategy
        return make_plan(chosen, current, free, self.config.rollout, self.config.canary)

    # -- the chain -----------------------------------------------------------------------------

    def deploy(
        self, release: str | None, *, rollout: RolloutHook | None = None, force: bool = False
    ) -> RolloutResult | None:
        """audit → test → build → sandbox → rollout. None when the cluster already runs the
        release. Drift refuses the deploy (Drifted) unless ``force``, which is journaled."""
        if release is not None:
            self.config.release(release)  # an unknown name is bad input before anything runs
        with self.journal.lock():
            self._check_audit(force)
            if self.config.service.test_command:
                with self.stage("test"):
                    self._run_tests(self.config.service.test_command)
            else:  # no ✓ for a stage that did not run
                self.say("– test: skipped (no service.test_command configured)")
            with self.stage(f"build {release or 'working tree'}"):
                target = (
                    self.sandbox.release(release, rebuild=True)
                    if release is not None
                    else self.sandbox.working_tree_release()
                )
            with self.stage(f"sandbox {self.config.cluster.name}"):
                self._recover_and_bring_up()
                if force:
                    self._one_release_first()
            prepared = self._prepare(target)
            if prepared is None:
                self.say(f"every instance already runs {target.label} ({target.short_digest})")
                return None
            with self.stage(f"rollout {prepared.from_release.label} → {target.label}"):
                return (rollout or self.run_rollout)(prepared, "deploy")

    def rollback(self, *, rollout: RolloutHook | None = None) -> RolloutResult:
        """Roll the cluster back to the release it ran before the current one."""
        with self.journal.lock():
            with self.stage(f"sandbox {self.config.cluster.name}"):
                self._recover_and_bring_up()
            current = self._current_release()
            previous = self._previous_release(current.label)
            prepared = self._prepare(previous)
            if prepared is None:
                raise SandboxError(f"the cluster already runs {previous.label}")
            with self.stage(f"rollback {current.label} → {previous.label}"):
                return (rollout or self.run_rollout)(prepared, "rollback")

    def converge(self, release: str | None = None, *, kind: str = "converge") -> Converged:
        """Put every slot on one release, carefully: what a chaos experiment ends with.

        Under the lock: finish interrupted rollouts, roll the instances running another build
        over to ``release`` (default: the one release running, else the last good one) with a
        journaled rolling rollout of ``kind``, then fill or trim slots to the configured count.
        SandboxError when the rollout does not succeed.
        """
        with self.journal.lock():
            return self._converge(release, kind)

    def _converge(self, release: str | None, kind: str) -> Converged:
        recovered = recover(self.sandbox, self.journal, say=self.say)
        running = self._running()
        label = release or _only_release(running) or self.journal.last_good_release()
        label = label or next(iter(self.config.releases), None)
        if label is None:
            raise ConfigError("no releases declared to converge on; declare one")
        wanted = self.sandbox.release(label)
        wrong = [item for item in running if item.digest != wanted.digest]
        if wrong:
            source = self.sandbox.release_by_digest(wrong[0].release, wrong[0].digest)
            plan = self._plan([item.name for item in wrong], "rolling")
            result = self.run_rollout(Prepared(plan, source, wanted), kind)
            if not result.succeeded:
                raise SandboxError(f"converging on {label} {result.outcome}: {result.reason}")
        before = {item.name for item in self._running()}
        self.sandbox.up(self.config.cluster.instances, label)
        after = {item.name for item in self._running()}
        return Converged(
            release=label,
            recovered=len(recovered),
            rolled=tuple(item.name for item in wrong),
            started=tuple(sorted(after ^ before)),
        )

    def run_rollout(
        self,
        prepared: Prepared,
        kind: str,
        on_step: Callable[[str], None] = lambda _: None,
        *,
        request_logs: Sequence[Path] = (),
    ) -> RolloutResult:
        """Run a prepared rollout (the load-measuring caller wraps this and names the request
        logs its load writes, which the canary gate reads)."""
        runner = Runner(self.sandbox, self.journal, say=self.say, request_logs=request_logs)
        return runner.run(
            prepared.plan, prepared.from_release, prepared.to_release, kind=kind, on_step=on_step
        )

    # -- stages ------------------------------------------------------------------------------

    def _check_audit(self, force: bool) -> None:
        """Deploy only onto a cluster whose every change the journal accounts for."""
        found = [finding.line() for finding in audit(self.journal, self.sandbox.backend).findings]
        if not found:
            return
        first = clip(found[0], 160)
        if not force:
            raise Drifted(
                f"the cluster drifted from its journal ({len(found)} finding(s), first: {first});"
                " see `cautious audit`; fix it, or deploy with --force (journaled)"
            )
        self.say(f"deploying despite {len(found)} audit finding(s) (--force): {first}")
        self.journal.note(FORCED_NOTE, findings=found)

    def _run_tests(self, command: str) -> None:
        try:
            result = subprocess.run(
                command,
                shell=True,
                cwd=self.config.root,
                capture_output=True,
                text=True,
                timeout=_TEST_TIMEOUT_S,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise StageFailed(f"tests ran past {_TEST_TIMEOUT_S} s; nothing was built") from None
        if result.returncode != 0:
            tail = (result.stdout + result.stderr).strip().splitlines()[-15:]
            for line in tail:
                self.say(line)
            raise StageFailed(
                f"tests failed (`{command}` exited {result.returncode}); nothing was built"
            )

    def _one_release_first(self) -> None:
        """A forced deploy onto a cluster running several releases (a host came back after a
        rollout had to pass it over) first converges on the last good release, journaled."""
        if len({item.digest for item in self._running()}) > 1:
            done = self._converge(self.journal.last_good_release(), "converge")
            self.say(f"--force: the cluster ran several releases; now all run {done.release}")

    def _recover_and_bring_up(self) -> None:
        recover(self.sandbox, self.journal, say=self.say)
        if self._running():
            return
        initial = self.journal.last_good_release()
        if initial is None or initial not in self.config.releases:
            initial = next(iter(self.config.releases), None)
        if initial is None:
            raise ConfigError("no releases declared to start the sandbox on; declare one")
        self.say(f"the sandbox is not running: starting it on {initial}")
        self.sandbox.up(self.config.cluster.instances, initial)

    def _running(self) -> list[Instance]:
        return [item for item in self.sandbox.backend.instances() if item.state == "running"]

    def _current_release(self) -> Release:
        running = self._running()
        digests = {item.digest for item in running}
        if len(digests) != 1:
            labels = ", ".join(sorted({f"{item.name}={item.release}" for item in running}))
            raise SandboxError(f"the cluster does not run one release ({labels or 'nothing'})")
        return self.sandbox.release_by_digest(running[0].release, running[0].digest)

    def _previous_release(self, current: str) -> Release:
        for record in reversed(self.journal.rollouts()):
            if record.outcome == "succeeded" and record.to_release == current:
                source = record.begin["from"]
                return self.sandbox.release_by_digest(source["label"], source["digest"])
        raise SandboxError(
            f"the journal has no rollout to {current} to go back from; "
            f"deploy the release you want with `invoke deploy --release NAME`"
        )

    def _prepare(self, target: Release) -> Prepared | None:
        current = self._current_release()
        if current.digest == target.digest:
            return None
        return Prepared(self._plan([item.name for item in self._running()]), current, target)


def _only_release(running: list[Instance]) -> str | None:
    labels = {item.release for item in running}
    return labels.pop() if len(labels) == 1 else None
