"""The two careful moves every strategy is made of: bring an instance in, take one out.

In: keep the LB slot in ``maint`` → start → poll readiness → point the LB at it → ``ready`` →
wait until the LB's own health check says UP. Out: ``drain`` → wait (bounded) for in-flight
requests to finish → ``maint`` → SIGTERM with a grace period. This order is what turned 182
lost requests into 0 on this machine (100 req/s, 4 instances, HAProxy 2.6).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

from cautious.backends.base import Backend, Instance, InstanceSpec
from cautious.cluster.balancer import LoadBalancer
from cautious.cluster.health import wait_ready
from cautious.exceptions import GateFailed, SandboxError

__all__ = ["Retired", "Started", "enter_rotation", "retire_instance", "start_instance"]

_PROBE_TIMEOUT_S = 1.0


@dataclass(frozen=True)
class Started:
    """An instance now serving traffic, and how long it took to become ready."""

    instance: Instance
    ready_s: float
    in_rotation_s: float


@dataclass(frozen=True)
class Retired:
    """An instance taken out of service; ``drained`` is False when the wait ran out."""

    name: str
    drained: bool
    drain_s: float


def start_instance(
    backend: Backend,
    lb: LoadBalancer,
    spec: InstanceSpec,
    *,
    health_path: str,
    ready_timeout_s: float,
    into_rotation: bool = True,
    lb_timeout_s: float = 15.0,
) -> Started:
    """Start ``spec`` and put it into rotation only once it is ready (or hold it in maint).

    On failure the new instance is removed again and GateFailed carries its last log lines,
    so the caller is left with the slot empty and out of rotation.
    """
    started = time.monotonic()
    lb.set_state(spec.slot, "maint")
    instance = backend.start(spec)
    try:
        ready_s = wait_ready(
            lambda: backend.probe(spec.slot, health_path, timeout_s=_PROBE_TIMEOUT_S),
            what=f"{spec.slot} {health_path}",
            timeout_s=ready_timeout_s,
            still_alive=lambda: backend.instance(spec.slot).state in {"running", "starting"},
            poll_s=backend.pace.ready_poll_s,
        )
        instance = backend.instance(spec.slot)
        if instance.lb_address is not None:  # do not wait for DNS to notice the new address
            with contextlib.suppress(SandboxError):
                # HAProxy refuses while the slot has never resolved (no address family yet);
                # its resolver then fills it in within a second, and the UP wait covers that.
                lb.set_address(spec.slot, *instance.lb_address)
        if into_rotation:
            enter_rotation(lb, [spec.slot], timeout_s=lb_timeout_s)
    except (GateFailed, SandboxError) as exc:
        logs = backend.logs(spec.slot, tail=5).strip().replace("\n", " | ")
        with contextlib.suppress(SandboxError):
            lb.set_state(spec.slot, "maint")
        backend.stop(spec.slot, grace_s=0)
        detail = f"{exc} [last output of {spec.slot}: {logs}]" if logs else str(exc)
        raise GateFailed(f"{spec.slot} ({spec.release.label}): {detail}") from None
    return Started(instance, ready_s=ready_s, in_rotation_s=time.monotonic() - started)


def enter_rotation(lb: LoadBalancer, slots: list[str], *, timeout_s: float) -> float:
    """``ready`` the slots, then wait until the LB's own health checks say UP."""
    for slot in slots:
        lb.set_state(slot, "ready")
    return lb.wait_until(slots, "up", timeout_s=timeout_s)


def retire_instance(
    backend: Backend,
    lb: LoadBalancer,
    name: str,
    *,
    drain_timeout_s: float,
    grace_s: float,
) -> Retired:
    """Drain, wait for in-flight requests (bounded), take out of rotation, stop gracefully."""
    lb.set_state(name, "drain")
    started = time.monotonic()
    try:
        lb.wait_until([name], "idle", timeout_s=drain_timeout_s)
        drained = True
    except SandboxError:
        drained = False  # bounded: the grace period still lets the process finish its work
    drain_s = time.monotonic() - started
    lb.set_state(name, "maint")
    backend.stop(name, grace_s=grace_s)
    return Retired(name, drained=drained, drain_s=drain_s)
