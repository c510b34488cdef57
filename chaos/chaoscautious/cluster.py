"""The cluster as a whole: is it healthy, bring it back, restart its load balancer.

``restore`` is what every experiment's rollbacks (and the game day between experiments) rely on
to leave the sandbox as they found it: faults undone, an interrupted rollout converged, every
slot running the wanted release, in rotation, healthy. It is the deploy pipeline's own
``converge`` (a journaled rolling rollout under the cluster's lock, ``Sandbox.up`` to fill empty
slots), so a restore never costs availability of its own and ``invoke history`` shows it.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from chaoscautious import faults
from chaoscautious.context import ChaosError, RunState, Target, deadline_loop, log

__all__ = ["health", "restart_lb", "restore", "wait_healthy"]

_HEALTHY_TIMEOUT_S = 60.0


def health(target: Target) -> dict[str, Any]:
    """Every instance: its state, readiness, LB status; how many are fully healthy.

    Healthy means running, the health path answering 200 on the instance itself, and UP at the
    load balancer — what a user needs from an instance.
    """
    stats = {}
    lb_error = ""
    try:
        stats = target.runtime().stats()
    except Exception as exc:
        lb_error = str(exc)
    health_path = target.config.service.health_path
    rows = []
    instances = target.instances(running_only=False)
    for instance in instances:
        running = instance.state == "running"
        ready = running and target.backend.probe(instance.name, health_path, timeout_s=1.0) == 200
        lb = stats[instance.name].status if instance.name in stats else "absent"
        rows.append(
            {
                "name": instance.name,
                "release": instance.release,
                "state": instance.state,
                "ready": ready,
                "lb": lb,
                "healthy": running and ready and lb == "UP",
            }
        )
    expected = target.config.cluster.instances
    healthy = sum(1 for row in rows if row["healthy"])
    releases = Counter(item.release for item in instances if item.state == "running")
    return {
        "expected": expected,
        "healthy": healthy,
        # short of the configured count, plus any container beyond it (dead or extra)
        "unhealthy": max(0, expected - healthy) + max(0, len(rows) - expected),
        "releases": dict(releases),
        "release_count": len(releases),
        "instances": rows,
        "lb_error": lb_error,
    }


def wait_healthy(target: Target, timeout_s: float = _HEALTHY_TIMEOUT_S) -> dict[str, Any]:
    """Poll :func:`health` until every expected instance is healthy, or ``timeout_s`` passes."""
    snapshot: dict[str, Any] = {}
    for _ in deadline_loop(timeout_s, 0.5):
        snapshot = health(target)
        if snapshot["unhealthy"] == 0:
            break
    return snapshot


def restore(
    target: Target,
    state: RunState | None = None,
    release: str | None = None,
    say: Callable[[str], None] = lambda line: log.info("cautious: %s", line),
) -> dict[str, Any]:
    """Bring the cluster back: no fault left, ``release`` (default: what it runs) on every slot.

    Steps: undo faults; start the load balancer if it is gone; converge the cluster as a deploy
    would (under the rollout lock: recover an interrupted rollout, roll instances on another
    build over to ``release``, journaled as ``chaos-restore``, fill empty slots); then wait
    until all are healthy and check that nothing is left behind. Raises ChaosError when the
    cluster is not healthy after.
    """
    from cautious.deploy import DeployPipeline
    from cautious.exceptions import CautiousError

    started = time.monotonic()
    done = faults.clear(target, state)
    sandbox = target.sandbox()
    try:
        if sandbox.backend.lb() is None:
            sandbox.ensure_lb()
            done.append("started the load balancer")
        pipeline = DeployPipeline(target.config, say=say, sandbox=sandbox)
        converged = pipeline.converge(release, kind="chaos-restore")
    except CautiousError as exc:
        raise ChaosError(f"cannot restore cluster {target.cluster!r}: {exc}") from None
    label = converged.release
    if converged.recovered:
        done.append("recovered an interrupted rollout")
    if converged.rolled:
        done.append(f"rolled {', '.join(converged.rolled)} over to {label}")
    if converged.started:
        done.append(f"sandbox.up: {', '.join(converged.started)}")
    snapshot = wait_healthy(target)
    left = faults.leftovers(target)
    if snapshot["unhealthy"] or left["count"]:
        raise ChaosError(
            f"cluster {target.cluster!r} is not healthy after the restore: "
            f"{snapshot['healthy']}/{snapshot['expected']} healthy, leftovers {left}"
        )
    summary = {
        "release": label,
        "done": done,
        "healthy": snapshot["healthy"],
        "took_s": round(time.monotonic() - started, 1),
    }
    if state is not None:
        state.event(f"cluster restored on {label} in {summary['took_s']} s")
    return summary


def restart_lb(target: Target, state: RunState, *, grace_s: float = 1.0) -> dict[str, Any]:
    """Restart the load balancer the way a real LB restart happens: same address, fresh
    process (soft stop, killed after ``grace_s``). Its runtime state (drain/maint flags,
    weights, addresses set through the API) is lost, as in any restart."""
    from cautious.exceptions import CautiousError

    try:
        restart = target.backend.restart_lb(grace_s)
    except CautiousError as exc:
        raise ChaosError(f"cannot restart the load balancer: {exc}") from None
    down_s = round(restart.down_s, 2)
    state.event(
        f"load balancer restarted: stopped in {restart.stopped_s:.2f} s, "
        f"its runtime API answered again after {down_s:g} s",
        instance="lb",
        state="restarted",
    )
    if not restart.same_address:
        raise ChaosError("the load balancer came back on new host ports; clients lost it")
    return {"restarted": "lb", "stopped_s": round(restart.stopped_s, 2), "down_s": down_s}
