"""Faults that need more than one call: network latency and loss, cuts, pauses, and cleanup.

How a fault is made is the backend's (``NetworkFaults`` in ``cautious.backends``: on Docker,
``tc netem`` from a helper container in the instance's network namespace, or a latency proxy
where the kernel has no netem; a network disconnect for a cut). This module checks the request,
records every fault in the run state (so rollbacks, the report and the game day know what was
done and when it was undone), and watches how the load balancer reacts.

:func:`leftovers` lists what faults may leave behind (helpers, qdiscs, LB redirects, paused or
disconnected instances), asked of the cluster itself, and :func:`clear` undoes all of it.
"""

from __future__ import annotations

import time
from functools import partial
from typing import TYPE_CHECKING, Any

from chaoscautious.context import (
    ChaosError,
    RunState,
    Target,
    acting,
    deadline_loop,
    suppressed,
)

if TYPE_CHECKING:
    from cautious.backends import NetworkFault, NetworkFaults

__all__ = [
    "add_network_fault",
    "clear",
    "cut_off",
    "leftovers",
    "reconnect",
    "set_paused",
]


def _network_faults(target: Target) -> NetworkFaults:
    from cautious.backends import NetworkFaults

    backend = target.backend
    if not isinstance(backend, NetworkFaults):
        raise ChaosError(f"the {backend.name} backend cannot inject network faults")
    return backend


def _record(
    state: RunState, kind: str, slot: str, fault: NetworkFault, added: float
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "kind": kind,
        "instance": slot,
        "spec": fault.spec,
        "mechanism": fault.mechanism,
        "helper": fault.helper,
        "added": added,
        "removed": None,
        "lb_down_after_s": None,
    }
    state.append("faults", record)
    return record


# -- latency and loss ---------------------------------------------------------------------------


def add_network_fault(
    target: Target,
    state: RunState,
    instance: str,
    *,
    delay_ms: float = 0.0,
    jitter_ms: float = 0.0,
    loss_percent: float = 0.0,
    mechanism: str = "auto",
    watch_lb_s: float = 0.0,
) -> dict[str, Any]:
    """Slow down (and/or drop packets of) one instance's traffic; see the module docstring."""
    if not (0 <= delay_ms <= 60_000 and 0 <= jitter_ms <= delay_ms and 0 <= loss_percent < 100):
        raise ChaosError("need 0 ≤ jitter_ms ≤ delay_ms ≤ 60000 and 0 ≤ loss_percent < 100")
    if not (delay_ms or loss_percent):
        raise ChaosError("give delay_ms or loss_percent")
    backend = _network_faults(target)
    slot = target.pick(instance).name
    kind = "latency" if delay_ms else "loss"
    fault = acting(
        f"{kind} on {slot}",
        lambda: backend.add_network_fault(
            slot,
            delay_ms=delay_ms,
            jitter_ms=jitter_ms,
            loss_percent=loss_percent,
            mechanism=mechanism,
        ),
    )
    added = time.time()
    record = _record(state, kind, slot, fault, added)
    state.event(
        f"{kind} on {slot}: {fault.spec} ({fault.mechanism})", instance=slot, state=f"+{kind}"
    )
    if watch_lb_s > 0:
        record["lb_down_after_s"] = _watch_lb(target, state, slot, added, watch_lb_s)
    return record


def _watch_lb(
    target: Target, state: RunState, slot: str, since: float, watch_s: float
) -> float | None:
    """Seconds until the LB took ``slot`` out of rotation by itself (None if it did not)."""
    runtime = target.runtime()
    status = ""
    for _ in deadline_loop(watch_s, 0.1):
        stat = runtime.stats().get(slot)
        if stat is not None and not stat.status.startswith("UP"):
            status = stat.status
            break
    if not status:
        state.event(f"the load balancer kept {slot} in rotation for {watch_s:g} s")
        return None
    after = round(time.time() - since, 2)

    def note(data: dict[str, Any]) -> None:
        for fault in reversed(data.get("faults") or []):
            if fault["instance"] == slot and fault["lb_down_after_s"] is None:
                fault["lb_down_after_s"] = after
                return

    state.update(note)
    state.event(f"the load balancer marked {slot} {status} after {after:g} s")
    return after


# -- network cut --------------------------------------------------------------------------------


def cut_off(target: Target, state: RunState, instance: str) -> dict[str, Any]:
    """Take one instance off the cluster network (the LB can no longer reach it)."""
    backend = _network_faults(target)
    slot = target.pick(instance).name
    fault = acting(f"cutting {slot} off", lambda: backend.cut_off(slot))
    record = _record(state, "network-cut", slot, fault, time.time())
    state.event(f"{slot} {fault.spec}", instance=slot, state="cut off")
    return record


def reconnect(target: Target, state: RunState | None = None, instance: str = "all") -> list[str]:
    """Put cut-off instances back on the cluster network, under their slot name."""
    backend = _network_faults(target)
    done = []
    for item in target.instances(running_only=False):
        if instance not in {"all", item.name}:
            continue
        if not acting(f"reconnecting {item.name}", partial(backend.reconnect, item.name)):
            continue
        done.append(item.name)
        if state is not None:
            _mark_removed(state, item.name, "network-cut")
            state.event(f"{item.name} reconnected", instance=item.name, state="reconnected")
    return done


def _mark_removed(state: RunState, slot: str, kind: str | None = None) -> None:
    now = time.time()

    def mark(data: dict[str, Any]) -> None:
        for fault in data.get("faults") or []:
            matches = kind is None or fault["kind"] == kind
            if fault["instance"] == slot and fault["removed"] is None and matches:
                fault["removed"] = now

    state.update(mark)


# -- pause --------------------------------------------------------------------------------------


def set_paused(target: Target, state: RunState, instance: str, paused: bool) -> list[str]:
    """Freeze or thaw instances; ``all`` thaws every paused one."""
    if paused:
        slot = target.pick(instance).name
        acting(f"pausing {slot}", lambda: target.backend.pause(slot))
        state.event(f"{slot} paused", instance=slot, state="paused")
        return [slot]
    done = []
    for item in target.instances(running_only=False):
        if instance in {"all", item.name} and item.state == "paused":
            acting(f"unpausing {item.name}", partial(target.backend.unpause, item.name))
            done.append(item.name)
            state.event(f"{item.name} unpaused", instance=item.name, state="unpaused")
    return done


# -- leftovers and cleanup ----------------------------------------------------------------------


def leftovers(target: Target) -> dict[str, Any]:
    """What a fault could have left behind, checked on the cluster itself (not the run state)."""
    from cautious.backends import NetworkFaults, NetworkLeftovers

    backend = target.backend
    network = NetworkLeftovers()
    if isinstance(backend, NetworkFaults):
        network = acting("looking for leftovers", backend.network_leftovers)
    paused = [item.name for item in target.instances(running_only=False) if item.state == "paused"]
    found: dict[str, Any] = {
        "helpers": list(network.helpers),
        "qdiscs": dict(network.qdiscs),
        "lb_redirects": dict(network.lb_redirects),
        "paused": paused,
        "disconnected": list(network.disconnected),
    }
    found["count"] = sum(len(value) for value in found.values())
    return found


def clear(target: Target, state: RunState | None = None, instance: str = "all") -> list[str]:
    """Undo every fault on the cluster (or on one instance): thaw, reconnect, drop netem qdiscs,
    point the LB back, remove helpers. Best effort per item, so one failure does not leave the
    rest in place; :func:`leftovers` tells afterwards whether anything survived."""
    from cautious.backends import NetworkFaults

    done: list[str] = []
    with suppressed("unpausing instances"):
        for item in target.instances(running_only=False):
            if instance in {"all", item.name} and item.state == "paused":
                target.backend.unpause(item.name)
                done.append(f"unpaused {item.name}")
    backend = target.backend
    if isinstance(backend, NetworkFaults):
        with suppressed("reconnecting instances"):
            done += [f"reconnected {slot}" for slot in reconnect(target, state, instance)]
        with suppressed("clearing network faults"):
            done += backend.clear_network_faults(None if instance == "all" else instance)
    if state is not None:
        now = time.time()

        def mark(data: dict[str, Any]) -> None:
            for fault in data.get("faults") or []:
                if instance in {"all", fault["instance"]}:
                    fault["removed"] = fault["removed"] or now

        state.update(mark)
        for line in done:
            state.event(line)
    return done
