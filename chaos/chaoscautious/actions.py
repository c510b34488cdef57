"""Actions: what a Cautious experiment does to the sandbox cluster.

Each acts only on the cluster's own instances, through its backend, is bounded in time
(chaoslib does not enforce ``timeout`` on Python providers), records what it changed in the run
state (so rollbacks, the report and the game day know), and returns a mapping for the journal.

Instances are named by slot (``sample-2``) or picked: ``first`` / ``last`` / ``random`` among
the running ones. Rolling rollouts go through slots in order, so mid-rollout ``last`` is still
on the old release and ``first`` is already on the new one.
"""

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from chaoscautious.context import ChaosError, RunState, acting, target

if TYPE_CHECKING:
    from cautious.backends import Backend

__all__ = [
    "add_latency",
    "add_packet_loss",
    "cut_off_instance",
    "kill_instance",
    "pause_instance",
    "reconnect_instance",
    "remove_network_faults",
    "restart_instance",
    "restart_lb",
    "restore_cluster",
    "start_load",
    "start_rollout",
    "stop_instance",
    "stop_load",
    "unpause_instance",
    "wait_for_rollout",
    "wait_for_rollout_progress",
]

_MAX_WAIT_S = 3_600.0


def _bounded(seconds: float, name: str) -> float:
    if not 0 <= seconds <= _MAX_WAIT_S:
        raise ChaosError(f"{name} must be between 0 and {_MAX_WAIT_S:g} s, not {seconds!r}")
    return float(seconds)


# -- instances ----------------------------------------------------------------------------------


def kill_instance(
    instance: str = "last", signal: str = "SIGKILL", configuration: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Send ``signal`` (default SIGKILL: no drain, no goodbye) to one instance's process."""
    tgt = target(configuration)
    picked = tgt.pick(instance)
    state = acting(
        f"sending {signal} to {picked.name}", lambda: tgt.backend.kill(picked.name, signal)
    )
    RunState(tgt).event(
        f"{picked.name} ({picked.release}) sent {signal}: now {state}",
        instance=picked.name,
        release=picked.release,
        state="killed" if state != "running" else f"sent {signal}",
    )
    return {"instance": picked.name, "release": picked.release, "signal": signal, "state": state}


def stop_instance(
    instance: str = "last", grace_s: float = 10.0, configuration: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Stop one instance as an operator would: SIGTERM, SIGKILL after ``grace_s`` (no LB drain)."""
    return _timed(
        instance,
        grace_s,
        configuration,
        ("stopping", "stopped"),
        lambda backend, name, grace: backend.stop(name, grace, remove=False),
    )


def restart_instance(
    instance: str = "last", grace_s: float = 10.0, configuration: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Restart one instance's process in place: it comes back on the same release, after its
    start-up."""
    return _timed(
        instance,
        grace_s,
        configuration,
        ("restarting", "restarted"),
        lambda backend, name, grace: backend.restart(name, grace),
    )


def _timed(
    instance: str,
    grace_s: float,
    configuration: dict[str, Any] | None,
    verbs: tuple[str, str],
    act: "Callable[[Backend, str, float], object]",
) -> dict[str, Any]:
    """Act on one picked instance with a grace period; journal and return how long it took."""
    tgt = target(configuration)
    name = tgt.pick(instance).name
    grace = _bounded(grace_s, "grace_s")
    doing, done = verbs
    started = time.monotonic()
    acting(f"{doing} {name}", lambda: act(tgt.backend, name, grace))
    took = round(time.monotonic() - started, 2)
    RunState(tgt).event(f"{name} {done} in {took:g} s", instance=name, state=done)
    return {"instance": name, "took_s": took}


def pause_instance(
    instance: str = "last", duration_s: float = 0.0, configuration: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Freeze one instance (connections hang, nothing is refused); thaw it after
    ``duration_s`` when that is given, else leave it to ``unpause_instance``/rollbacks."""
    from chaoscautious.faults import set_paused

    tgt = target(configuration)
    state = RunState(tgt)
    paused = set_paused(tgt, state, instance, True)
    seconds = _bounded(duration_s, "duration_s")
    if seconds:
        time.sleep(seconds)
        set_paused(tgt, state, paused[0], False)
    return {"instance": paused[0], "paused_s": seconds or None}


def unpause_instance(
    instance: str = "all", configuration: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Thaw a paused instance (``all``: every paused one of the cluster)."""
    from chaoscautious.faults import set_paused

    tgt = target(configuration)
    return {"unpaused": set_paused(tgt, RunState(tgt), instance, False)}


# -- network ------------------------------------------------------------------------------------


def add_latency(
    instance: str = "last",
    delay_ms: float = 300.0,
    jitter_ms: float = 0.0,
    watch_lb_s: float = 0.0,
    mechanism: str = "auto",
    configuration: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Delay one instance's traffic by ``delay_ms`` (tc netem; a proxy where the kernel lacks
    netem, see chaoscautious.faults). With ``watch_lb_s``, watch that long whether the load
    balancer takes the instance out by itself, and record after how long."""
    from chaoscautious.faults import add_network_fault

    tgt = target(configuration)
    return add_network_fault(
        tgt,
        RunState(tgt),
        instance,
        delay_ms=delay_ms,
        jitter_ms=jitter_ms,
        mechanism=mechanism,
        watch_lb_s=_bounded(watch_lb_s, "watch_lb_s"),
    )


def add_packet_loss(
    instance: str = "last",
    percent: float = 10.0,
    watch_lb_s: float = 0.0,
    mechanism: str = "auto",
    configuration: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Lose ``percent`` % of one instance's packets (tc netem; the proxy fallback delays a
    "lost" chunk by a TCP retransmission timeout instead, as the client would experience it)."""
    from chaoscautious.faults import add_network_fault

    tgt = target(configuration)
    return add_network_fault(
        tgt,
        RunState(tgt),
        instance,
        loss_percent=percent,
        mechanism=mechanism,
        watch_lb_s=_bounded(watch_lb_s, "watch_lb_s"),
    )


def remove_network_faults(
    instance: str = "all", configuration: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Undo latency, loss, cuts and pauses (on one instance or ``all``), remove helper
    containers, and check that none is left."""
    from chaoscautious.faults import clear, leftovers

    tgt = target(configuration)
    done = clear(tgt, RunState(tgt), instance)
    left = leftovers(tgt)
    if left["count"]:
        raise ChaosError(f"faults left behind after the cleanup: {left}")
    return {"done": done, "leftovers": 0}


def cut_off_instance(
    instance: str = "last", configuration: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Disconnect one instance from the cluster network: the LB's checks and requests to it
    fail as for a host whose network went away."""
    from chaoscautious.faults import cut_off

    tgt = target(configuration)
    return cut_off(tgt, RunState(tgt), instance)


def reconnect_instance(
    instance: str = "all", configuration: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Connect cut-off instances again under their slot name (``all``: every one)."""
    from chaoscautious.faults import reconnect

    tgt = target(configuration)
    return {"reconnected": reconnect(tgt, RunState(tgt), instance)}


# -- load balancer ------------------------------------------------------------------------------


def restart_lb(grace_s: float = 1.0, configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Restart HAProxy on the same address: soft stop, killed after ``grace_s``, a fresh
    process from the same configuration (its runtime state is lost, as in any restart)."""
    from chaoscautious.cluster import restart_lb as restart

    tgt = target(configuration)
    return restart(tgt, RunState(tgt), grace_s=_bounded(grace_s, "grace_s"))


# -- rollout ------------------------------------------------------------------------------------


def start_rollout(
    release: str,
    run_tests: bool = False,
    settings: dict[str, Any] | None = None,
    configuration: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Start ``deploy --release`` in the background (the library chain, no load of its own).

    ``settings`` overrides cautious.yaml keys for this rollout only, dotted
    (``{"rollout.ready_timeout_s": 10}``); ``run_tests`` runs ``service.test_command`` first.
    """
    from chaoscautious.background import start_rollout as start

    tgt = target(configuration)
    return start(tgt, RunState(tgt), release, run_tests=run_tests, settings=settings)


def wait_for_rollout(
    timeout_s: float = 600.0, configuration: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Wait for the background rollout to end; past ``timeout_s`` stop it (it rolls back) and
    fail. Returns its outcome: the hypothesis judges it (``rollout_state``), not this action."""
    from chaoscautious.background import wait_for_rollout as wait

    return wait(RunState(target(configuration)), timeout_s=_bounded(timeout_s, "timeout_s"))


def wait_for_rollout_progress(
    instances: int = 1, timeout_s: float = 120.0, configuration: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Wait until the background rollout has put ``instances`` new instances into rotation."""
    from chaoscautious.background import wait_for_rollout_progress as wait

    tgt = target(configuration)
    return wait(tgt, RunState(tgt), instances=instances, timeout_s=_bounded(timeout_s, "timeout_s"))


# -- load ---------------------------------------------------------------------------------------


def start_load(
    rate: float | None = None,
    users: int | None = None,
    duration_s: float = _MAX_WAIT_S,
    configuration: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Start Locust against the cluster's LB (rate/users default to cautious.yaml's ``load``),
    writing the request log into the run folder; returns once requests flow. ``duration_s`` is
    only an upper bound: ``stop_load`` (or the control) ends it."""
    from chaoscautious.background import start_load as start

    tgt = target(configuration)
    return start(
        tgt, RunState(tgt), rate=rate, users=users, duration_s=_bounded(duration_s, "duration_s")
    )


def stop_load(
    tail_s: float | None = None, configuration: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Stop the load after ``tail_s`` more seconds (default: ``load.tail_s``, so the time after
    the fault is measured too); a no-op when none runs, so rollbacks can always call it."""
    from chaoscautious.background import stop_load as stop

    tgt = target(configuration)
    tail = tgt.config.load.tail_s if tail_s is None else _bounded(tail_s, "tail_s")
    return stop(tgt, RunState(tgt), tail_s=tail)


# -- restore ------------------------------------------------------------------------------------


def restore_cluster(
    release: str | None = None, configuration: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The rollback every experiment ends with: stop background work, undo every fault, bring
    every slot back to ``release`` (default: the control's baseline, else what runs), healthy."""
    from chaoscautious.background import stop_background
    from chaoscautious.cluster import restore

    tgt = target(configuration)
    state = RunState(tgt)
    stopped = stop_background(state)
    wanted = release or state.read().get("baseline_release") or None
    summary = restore(tgt, state, release=wanted)
    summary["stopped"] = stopped
    return summary
