"""The runner: executes a Plan against the backend and the LB, with gates and rollback.

Each step is journaled as it ends. Before a step runs, the runner notes how to undo it from what
it sees (which release a slot ran, which weights the LB had); when any gate fails — or the run
is interrupted — it undoes the steps already done, newest first, with the same care as going
forward (drain before stop, readiness before rotation). Whatever happens, the journal's ``end``
record names the release of every instance. ``recover`` finishes the job of an orchestrator
that died (SIGKILL) mid-rollout: it brings the cluster back to the rollout's from-release.
"""

from __future__ import annotations

import contextlib
import functools
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

from cautious.cluster.balancer import LoadBalancer, ServerStat
from cautious.cluster.sandbox import Sandbox
from cautious.exceptions import GateFailed, HostUnreachable, SandboxError
from cautious.release import Release
from cautious.rollout.canary import CanaryGate, CanaryRefused
from cautious.rollout.journal import Journal, Outcome, RolloutRecord
from cautious.rollout.operations import Retired, enter_rotation, retire_instance, start_instance
from cautious.rollout.plan import (
    READ_ONLY_OFF_UNDO,
    Bake,
    Plan,
    ReadOnly,
    Retire,
    SetWeights,
    Shadow,
    Start,
    Step,
    Switch,
)
from cautious.rollout.records import (
    InstanceRecord,
    RolloutSummary,
    StepPhase,
    StepRecord,
    TimelineEvent,
)
from cautious.rollout.shadowing import shadow_gate

__all__ = ["Interrupted", "RolloutResult", "Runner", "recover", "terminate_as_interrupt"]

_LB_TIMEOUT_S = 15.0

T = TypeVar("T")


class Interrupted(BaseException):
    """SIGTERM or Ctrl-C during a rollout: roll back, then stop."""


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into Interrupted for the duration, so a stopped rollout rolls back."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise Interrupted(f"signal {signal.Signals(signum).name}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@dataclass(frozen=True)
class RolloutResult:
    """What happened: the outcome, its reason, the steps, and where every instance ended.

    It holds the plan and the releases themselves; :meth:`summary` is its plain-data form for
    reports and result files.
    """

    id: str
    plan: Plan
    from_release: Release
    to_release: Release
    outcome: Outcome
    reason: str
    started: float
    ended: float
    steps: tuple[StepRecord, ...] = ()
    timeline: tuple[TimelineEvent, ...] = ()
    instances: tuple[InstanceRecord, ...] = ()

    @property
    def succeeded(self) -> bool:
        return self.outcome == "succeeded"

    @property
    def strategy(self) -> str:
        return self.plan.strategy

    @property
    def longest_without_capacity_s(self) -> float:
        """The longest time no instance was in rotation (stop-and-go's honest outage)."""
        serving = set(self.plan.current)
        empty_since: float | None = None
        longest = 0.0
        for event in sorted(self.timeline, key=lambda item: item.t):
            if event.state == "ready":
                serving.add(event.instance)
            else:
                serving.discard(event.instance)
            if not serving and empty_since is None:
                empty_since = event.t
            elif serving and empty_since is not None:
                longest = max(longest, event.t - empty_since)
                empty_since = None
        return longest

    def summary(self) -> RolloutSummary:
        """The rollout in plain data, as reports and the chaos worker's result file hold it."""
        return RolloutSummary(
            id=self.id,
            strategy=self.strategy,
            from_release=self.from_release.label,
            to_release=self.to_release.label,
            outcome=self.outcome,
            reason=self.reason,
            started=self.started,
            ended=self.ended,
            steps=self.steps,
            timeline=self.timeline,
            instances=self.instances,
        )


@dataclass
class _Undo:
    description: str
    action: Callable[[], object]


class Runner:
    """Runs plans on one sandbox cluster and journals them."""

    def __init__(
        self,
        sandbox: Sandbox,
        journal: Journal,
        say: Callable[[str], None] = print,
        *,
        request_logs: Sequence[Path] = (),
    ) -> None:
        """``request_logs``: the logs load is writing, the canary gate's samples (without any,
        the gate judges error ratios from the load balancer's counters)."""
        self.sandbox = sandbox
        self.journal = journal
        self.say = say
        self.config = sandbox.config
        self.backend = sandbox.backend
        self.request_logs = tuple(request_logs)
        self._runtime: LoadBalancer | None = None
        self._canary: CanaryGate | None = None
        self.timeline: list[TimelineEvent] = []
        self.steps: list[StepRecord] = []

    @property
    def runtime(self) -> LoadBalancer:
        if self._runtime is None:
            self._runtime = self.sandbox.runtime()
        return self._runtime

    # -- the run -----------------------------------------------------------------------------

    def run(
        self,
        plan: Plan,
        from_release: Release,
        to_release: Release,
        *,
        kind: str = "deploy",
        on_step: Callable[[str], None] = lambda _: None,
    ) -> RolloutResult:
        """Execute ``plan``; on a failed gate or an interrupt, undo what was done."""
        started = time.time()
        rollout_id = self.journal.begin(
            kind=kind,
            strategy=plan.strategy,
            cluster=self.config.cluster.name,
            **{"from": _release_dict(from_release), "to": _release_dict(to_release)},
            instances=[item.to_dict() for item in self.instances_now()],
            plan=plan.to_dict(),
        )
        releases = {"from": from_release, "to": to_release}
        for slot in plan.current:  # the starting picture, so every lane begins at the start
            self._event(slot, from_release.label, "ready")
        undo: list[_Undo] = []
        outcome: Outcome = "succeeded"
        reason = ""
        interrupted: Interrupted | KeyboardInterrupt | None = None
        try:
            with terminate_as_interrupt():
                for index, step in enumerate(plan.steps, 1):
                    on_step(f"step {index}/{len(plan.steps)}: {step.describe()}")
                    forward = functools.partial(self._execute, step, releases, undo)
                    self._journaled(rollout_id, step.describe(), step, "forward", forward)
        except (GateFailed, SandboxError) as exc:
            outcome, reason = "rolled-back", str(exc)
        except (Interrupted, KeyboardInterrupt) as exc:
            why = str(exc) or "Ctrl-C"  # a bare KeyboardInterrupt has no message
            outcome, reason, interrupted = "rolled-back", f"interrupted ({why})", exc
        if outcome != "succeeded":
            self.say(f"rolling back: {reason}")
            outcome, reason = self._undo_all(rollout_id, undo, reason, on_step)
        instances = self.instances_now()
        silent = sorted({item.host for item in instances if item.state == "unreachable"})
        if outcome == "rolled-back" and silent:  # what runs there is unknown: not one release
            outcome = "aborted"
            reason += f"; rolled back on every host that answers, not on {', '.join(silent)}"
            reason += " (unreachable: see `cautious status`)"
        self.journal.end(
            rollout_id, outcome, reason=reason, instances=[item.to_dict() for item in instances]
        )
        if interrupted is not None and outcome == "aborted":
            raise interrupted
        return RolloutResult(
            id=rollout_id,
            plan=plan,
            from_release=from_release,
            to_release=to_release,
            outcome=outcome,
            reason=reason,
            started=started,
            ended=time.time(),
            steps=tuple(self.steps),
            timeline=tuple(self.timeline),
            instances=tuple(instances),
        )

    def _undo_all(
        self, rollout_id: str, undo: list[_Undo], reason: str, on_step: Callable[[str], None]
    ) -> tuple[Outcome, str]:
        """Undo newest first; a failing undo step makes the outcome ``aborted``.

        A step on a host that does not answer is passed over (its failure is journaled), so
        every host that answers still goes back. Any other failure stops the rollback.
        """
        with terminate_as_interrupt():  # a second SIGTERM must not cut the rollback short
            for item in reversed(undo):
                on_step(f"rollback: {item.description}")
                try:
                    self._journaled(rollout_id, item.description, None, "rollback", item.action)
                except HostUnreachable:
                    continue
                except (GateFailed, SandboxError, Interrupted) as exc:
                    return "aborted", f"{reason}; rollback failed at {item.description!r}: {exc}"
        return "rolled-back", reason

    def _journaled(
        self,
        rollout_id: str,
        name: str,
        step: Step | None,
        phase: StepPhase,
        body: Callable[[], Any],
    ) -> None:
        started = time.time()
        kind = type(step).__name__.lower() if step is not None else None
        slots = tuple(getattr(step, "slots", ()) or getattr(step, "watch", ()))
        record = functools.partial(StepRecord, name, phase, started, kind=kind, instances=slots)
        try:
            facts = body()
        except BaseException as exc:
            verdict = exc.verdict if isinstance(exc, GateFailed) else None
            judged = exc.facts if isinstance(exc, CanaryRefused) else {}
            self._record(
                rollout_id,
                record(time.time(), "failed", detail=str(exc), verdict=verdict, facts=judged),
            )
            raise
        facts = facts if isinstance(facts, dict) else {}
        self._record(rollout_id, record(time.time(), "ok", facts=facts))

    def _record(self, rollout_id: str, record: StepRecord) -> None:
        self.steps.append(record)
        self.journal.step(rollout_id, **record.to_dict())
        mark = "✓" if record.outcome == "ok" else "✗"
        elapsed = (record.ended or record.started) - record.started
        self.say(f"{mark} {record.name} ({elapsed:.1f} s)")

    # -- steps -------------------------------------------------------------------------------

    def _execute(self, step: Step, releases: dict[str, Release], undo: list[_Undo]) -> Any:
        match step:
            case Retire(slots=slots, keep_serving=keep_serving):
                if keep_serving:
                    self._wait_for_other_capacity(slots)
                return self._retire(slots, undo)
            case Start(slots=slots, role=role, in_rotation=in_rotation):
                return self._start(slots, releases[role], in_rotation, undo)
            case Switch(into=into, out_of=out_of):
                self._switch(into, out_of)
                undo.append(
                    _Undo(f"switch back to {', '.join(out_of)}", lambda: self._switch(out_of, into))
                )
                return None
            case SetWeights(weights=weights, enter=enter):
                return self._set_weights(weights, enter, undo)
            case Bake():
                return self._bake(step)
            case Shadow():
                return shadow_gate(
                    step,
                    canary=self.config.canary,
                    backend=self.backend,
                    load_dir=self.request_logs[0].parent if self.request_logs else None,
                    check_alive=self._check_running,
                    poll_s=self.backend.pace.bake_poll_s,
                )
            case ReadOnly(on=on):
                self._read_only(on)
                if on:
                    undo.append(_Undo(READ_ONLY_OFF_UNDO, lambda: self._read_only(False)))
                return {"read_only": on}

    def _read_only(self, on: bool) -> None:
        """Throw the LB's read-only switch; the timeline shows it in the LB's own lane."""
        self.runtime.set_read_only(on)
        self._event("lb", "", "read-only" if on else "read-write")

    def _wait_for_other_capacity(self, slots: Sequence[str]) -> None:
        """Refuse to take ``slots`` out while no other instance is UP to take the traffic.

        A cluster with nothing else running (one instance) cannot avoid the gap; its outage is
        measured instead.
        """
        if all(item.name in slots for item in self.backend.instances()):
            return
        deadline = time.monotonic() + self.config.rollout.drain_timeout_s
        while True:
            others = [
                stat
                for name, stat in self.runtime.stats().items()
                if name not in slots and stat.status == "UP" and stat.weight > 0
            ]
            if others:
                return
            if time.monotonic() >= deadline:
                raise GateFailed(
                    f"capacity: no other instance is UP to serve while {', '.join(slots)} "
                    f"would be out; refusing to retire it"
                )
            time.sleep(self.backend.pace.bake_poll_s)

    def _retire(self, slots: Sequence[str], undo: list[_Undo]) -> dict[str, Any]:
        before = {slot: self.backend.instance(slot) for slot in slots}

        def retire(slot: str) -> dict[str, Any]:
            instance = before[slot]
            retired = self.retire_one(slot)
            if instance.state == "running":
                previous = self.sandbox.release_by_digest(instance.release, instance.digest)
                undo.append(
                    _Undo(
                        f"start {slot} on {previous.label} again",
                        lambda: self.start_one(slot, previous, True),
                    )
                )
            return {
                "instance": slot,
                "drained": retired.drained,
                "drain_s": round(retired.drain_s, 3),
            }

        return {"retired": _parallel(retire, slots)}

    def _start(
        self, slots: Sequence[str], release: Release, in_rotation: bool, undo: list[_Undo]
    ) -> dict[str, Any]:
        def start(slot: str) -> dict[str, Any]:
            ready_s = self.start_one(slot, release, in_rotation)
            undo.append(_Undo(f"retire {slot} ({release.label})", lambda: self.retire_one(slot)))
            return {"instance": slot, "release": release.label, "seconds": round(ready_s, 3)}

        return {"ready_s": _parallel(start, slots)}

    def start_one(self, slot: str, release: Release, in_rotation: bool) -> float:
        """Start one instance carefully; returns its time to ready."""
        self._event(slot, release.label, "starting")
        try:
            started = start_instance(
                self.backend,
                self.runtime,
                self.sandbox.spec(slot, release),
                health_path=self.config.service.health_path,
                ready_timeout_s=self.config.rollout.ready_timeout_s,
                into_rotation=in_rotation,
                lb_timeout_s=_LB_TIMEOUT_S,
            )
        except GateFailed:
            self._event(slot, release.label, "failed")
            raise
        self._event(slot, release.label, "ready" if in_rotation else "standby")
        return started.ready_s

    def retire_one(self, slot: str) -> Retired:
        """Take one instance out carefully, whatever release it runs."""
        release = self.backend.instance(slot).release
        self._event(slot, release, "draining")
        retired = retire_instance(
            self.backend,
            self.runtime,
            slot,
            drain_timeout_s=self.config.rollout.drain_timeout_s,
            grace_s=self.config.rollout.stop_grace_s,
        )
        self._event(slot, release, "stopped")
        return retired

    def _switch(self, into: Sequence[str], out_of: Sequence[str]) -> None:
        enter_rotation(self.runtime, list(into), timeout_s=_LB_TIMEOUT_S)
        for slot in into:
            self._event(slot, self.backend.instance(slot).release, "ready")
        for slot in out_of:
            self.runtime.set_state(slot, "drain")
            self._event(slot, self.backend.instance(slot).release, "draining")

    def _set_weights(
        self, weights: Sequence[tuple[str, int]], enter: Sequence[str], undo: list[_Undo]
    ) -> dict[str, Any]:
        stats = self.runtime.stats()
        previous = [(slot, stats[slot].weight) for slot, _ in weights]
        for slot, weight in weights:
            self.runtime.set_weight(slot, weight)
        if enter:
            enter_rotation(self.runtime, list(enter), timeout_s=_LB_TIMEOUT_S)
            for slot in enter:
                self._event(slot, self.backend.instance(slot).release, "ready")

        def restore() -> None:
            for slot in enter:
                self.runtime.set_state(slot, "drain")
                self._event(slot, self.backend.instance(slot).release, "draining")
            for slot, weight in previous:
                self.runtime.set_weight(slot, weight)

        undo.append(_Undo("restore the previous weights", restore))
        return {"weights": dict(weights)}

    # -- bake and its gates --------------------------------------------------------------------

    def _bake(self, step: Bake) -> dict[str, Any]:
        """Watch the new instances for ``seconds``; a canary bake asks the judge instead."""
        if step.judge_against:
            return self._canary_gate().bake(step)
        rollout = self.config.rollout
        start_stats = self.runtime.stats()
        deadline = time.monotonic() + step.seconds
        while True:
            self._check_watched(step.watch)
            if time.monotonic() < deadline:
                time.sleep(self.backend.pace.bake_poll_s)
                continue
            stats = self.runtime.stats()
            watched = _delta(start_stats, stats, step.watch)
            if (
                rollout.bake_max_error_ratio is not None
                and watched.ratio > rollout.bake_max_error_ratio
            ):
                raise GateFailed(
                    f"bake: {', '.join(step.watch)} answered {watched.ratio:.1%} 5xx "
                    f"({watched.errors}/{watched.requests}), "
                    f"above {rollout.bake_max_error_ratio:.1%}"
                )
            return {"requests": watched.requests, "errors_5xx": watched.errors}

    def _canary_gate(self) -> CanaryGate:
        """One gate per rollout: its samples accumulate from the first judged bake on."""
        if self._canary is None:
            self._canary = CanaryGate(
                self.config,
                self.runtime,
                request_logs=self.request_logs,
                poll_s=self.backend.pace.bake_poll_s,
                check_watched=self._check_watched,
                say=self.say,
            )
        return self._canary

    def _check_running(self, slots: Sequence[str]) -> None:
        """Each slot's instance still runs (out of rotation, so the LB's view is no test)."""
        for slot in slots:
            instance = self.backend.instance(slot)
            if instance.state != "running":
                raise GateFailed(f"{slot} is {instance.state} (exit code {instance.exit_code})")

    def _check_watched(self, slots: Sequence[str]) -> None:
        stats = self.runtime.stats()
        for slot in slots:
            instance = self.backend.instance(slot)
            if instance.state != "running":
                code = (
                    f" (exit code {instance.exit_code})" if instance.exit_code is not None else ""
                )
                raise GateFailed(f"bake: {slot} is {instance.state}{code}")
            status = stats[slot].status if slot in stats else "absent"
            if not status.startswith("UP"):
                raise GateFailed(f"bake: the load balancer marks {slot} {status}")

    # -- helpers -------------------------------------------------------------------------------

    def _event(self, slot: str, release: str, state: str) -> None:
        self.timeline.append(TimelineEvent(time.time(), slot, release, state))

    def instances_now(self) -> list[InstanceRecord]:
        """Every instance, its release and state, as the journal's end record lists them."""
        return [
            InstanceRecord(
                item.name, item.release, item.state, item.host, item.release_dir, item.digest
            )
            for item in self.backend.instances()
        ]


@dataclass(frozen=True)
class _Traffic:
    requests: int
    errors: int

    @property
    def ratio(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


def _delta(
    before: dict[str, ServerStat], after: dict[str, ServerStat], slots: Sequence[str]
) -> _Traffic:
    """Requests and 5xx answers of ``slots`` between two ``show stat`` readings."""
    requests = errors = 0
    for slot in slots:
        first, last = before.get(slot), after.get(slot)
        if last is None:
            continue
        requests += last.total_sessions - (first.total_sessions if first else 0)
        errors += last.responses_5xx - (first.responses_5xx if first else 0)
    return _Traffic(max(requests, 0), max(errors, 0))


def _parallel(body: Callable[[str], T], slots: Sequence[str]) -> list[T]:
    """Run ``body`` per slot at once; every slot finishes before the first error is raised."""
    if len(slots) == 1:
        return [body(slots[0])]
    with ThreadPoolExecutor(max_workers=len(slots)) as pool:
        futures = [pool.submit(body, slot) for slot in slots]
        errors = [future.exception() for future in futures]
    for error in errors:
        if error is not None:
            raise error
    return [future.result() for future in futures]


def _release_dict(release: Release) -> dict[str, Any]:
    return {"label": release.label, "digest": release.digest, "git_sha": release.git_sha}


def recover(
    sandbox: Sandbox, journal: Journal, say: Callable[[str], None] = print
) -> list[RolloutRecord]:
    """Converge the cluster after rollouts whose orchestrator died; journal them ``aborted``.

    The target is the interrupted rollout's from-release on the slots it started with: extra
    slots (green sets, canaries) are retired, slots on another release or not running are
    replaced, and every kept slot is put back in rotation with weight 1.
    """
    unfinished = journal.unfinished()
    for record in unfinished:
        release = sandbox.release_by_digest(record.from_release, record.begin["from"]["digest"])
        wanted = [item["name"] for item in record.begin["instances"] if item["state"] == "running"]
        say(f"recovering rollout {record.id}: bringing {', '.join(wanted)} back to {release.label}")
        runner = Runner(sandbox, journal, say)
        runtime = runner.runtime
        for instance in sandbox.backend.instances():
            if instance.name not in wanted:
                runner.retire_one(instance.name)
        for slot in wanted:
            instance = sandbox.backend.instance(slot)
            if instance.state == "running" and instance.digest == release.digest:
                runtime.set_weight(slot, 1)
                enter_rotation(runtime, [slot], timeout_s=_LB_TIMEOUT_S)
                continue
            if instance.state != "missing":
                runner.retire_one(slot)
            runner.start_one(slot, release, True)
            runtime.set_weight(slot, 1)
        journal.end(
            record.id,
            "aborted",
            reason=f"the orchestrator stopped mid-rollout; recovered to {release.label}",
            instances=[item.to_dict() for item in runner.instances_now()],
        )
    return unfinished
