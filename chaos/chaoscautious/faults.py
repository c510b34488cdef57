"""Faults that need more than one Docker call: network latency and loss, cuts, and cleanup.

Latency and packet loss are ``tc netem`` on the instance's ``eth0``, set from a short-lived
*helper* container that shares the instance's network namespace (``network_mode=container:ID``,
capability NET_ADMIN), built from the sandbox's base image (it has iproute2). The qdisc stays in
the instance's namespace after the helper is removed, and goes with the instance when a rollout
replaces it — as a network fault on a real host would.

Some kernels are built without netem (``CONFIG_NET_SCH_NETEM`` unset: ``tc`` answers "Specified
qdisc kind is unknown"; this project's own machines are like that). Then the same faults are
emulated one level up, still without touching the service's container: a helper in the
instance's network namespace runs a small TCP proxy that holds every response chunk back by the
delay (and, for loss, by a TCP retransmission timeout — 200 ms, doubling, at most four times
— per lost chunk, which is what packet loss does to a TCP client), and the load balancer's
server address is pointed at the proxy through its runtime API. Health checks go through the
proxy too, exactly as they would cross a slow link. Removing the fault points the LB back and
removes the helper.

Everything created carries the cluster's labels and ``cautious.role=chaos-helper``;
:func:`leftovers` lists what a fault may leave behind (helpers, qdiscs, LB redirects, paused or
disconnected instances) and :func:`clear` undoes all of it.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any

from chaoscautious.context import (
    HELPER_ROLE,
    LABEL,
    ChaosError,
    RunState,
    Target,
    deadline_loop,
    docker_client,
    slot_of,
    suppressed,
)

if TYPE_CHECKING:
    from docker.models.containers import Container

__all__ = [
    "PROXY_PORT",
    "add_network_fault",
    "clear",
    "cut_off",
    "leftovers",
    "reconnect",
    "run_helper",
    "set_paused",
]

PROXY_PORT = 47047  # where the fallback proxy listens inside the instance's network namespace
_HELPER_TIMEOUT_S = 30.0
_PROXY_READY_TIMEOUT_S = 15.0
_NETEM_MISSING = ("Specified qdisc kind is unknown", "Unknown qdisc")
_netem_supported: bool | None = None

# The fallback proxy, run with the base image's python3. Order is kept per direction (a chunk
# is never delivered before the one read before it, like TCP); only server → client is slowed.
PROXY_SCRIPT = r"""
import asyncio, random, sys
listen, upstream = int(sys.argv[1]), int(sys.argv[2])
delay, jitter, loss = float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])

async def pipe(reader, writer, slow):
    loop = asyncio.get_running_loop()
    queue = asyncio.Queue()
    async def pump():
        due = 0.0
        while True:
            try:
                data = await reader.read(65536)
            except OSError:
                data = b""
            if slow:
                wait, rto = delay + random.uniform(-jitter, jitter), 0.2
                while loss and rto <= 1.6 and random.random() < loss:  # at most 4 resends
                    wait, rto = wait + rto, rto * 2
                due = max(due, loop.time() + max(0.0, wait))
            await queue.put((due, data))
            if not data:
                return
    task = asyncio.ensure_future(pump())
    try:
        while True:
            due, data = await queue.get()
            if due > loop.time():
                await asyncio.sleep(due - loop.time())
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        task.cancel()
        writer.close()

async def handle(client_reader, client_writer):
    try:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", upstream)
    except OSError:
        client_writer.close()
        return
    await asyncio.gather(
        pipe(client_reader, up_writer, False), pipe(up_reader, client_writer, True)
    )

async def main():
    server = await asyncio.start_server(handle, "0.0.0.0", listen)
    print("proxy ready", flush=True)
    await server.serve_forever()

asyncio.run(main())
"""


# -- helper containers --------------------------------------------------------------------------


def _helper_spec(target: Target, instance: Container, purpose: str) -> dict[str, Any]:
    import docker.errors

    image = target.config.service.base_image
    try:
        docker_client().images.get(image)
    except docker.errors.ImageNotFound:
        raise ChaosError(f"the helper image {image} is missing; run `invoke sandbox.up`") from None
    slot = slot_of(instance)
    return {
        "image": image,
        "name": f"cautious-{target.cluster}-chaos-{slot}-{uuid.uuid4().hex[:6]}",
        "network_mode": f"container:{instance.id}",
        "cap_add": ["NET_ADMIN"],
        "labels": {
            f"{LABEL}managed": "true",
            f"{LABEL}cluster": target.cluster,
            f"{LABEL}role": HELPER_ROLE,
            f"{LABEL}slot": slot,
            f"{LABEL}purpose": purpose,
        },
        "detach": True,
    }


def run_helper(
    target: Target, instance: Container, command: list[str], *, timeout_s: float = _HELPER_TIMEOUT_S
) -> tuple[int, str]:
    """Run ``command`` in the instance's network namespace; (exit code, output). Always removed."""
    import requests.exceptions

    helper = docker_client().containers.run(command=command, **_helper_spec(target, instance, "tc"))
    try:
        try:
            status = helper.wait(timeout=timeout_s)
        except requests.exceptions.RequestException:
            raise ChaosError(f"helper {' '.join(command)} ran past {timeout_s:g} s") from None
        output = helper.logs().decode(errors="replace").strip()
        return int(status.get("StatusCode", 1)), output
    finally:
        with suppressed(f"removing helper {helper.name}"):
            helper.remove(force=True)


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
    global _netem_supported
    if mechanism not in {"auto", "netem", "proxy"}:
        raise ChaosError(f"mechanism must be auto, netem or proxy, not {mechanism!r}")
    if not (0 <= delay_ms <= 60_000 and 0 <= jitter_ms <= delay_ms and 0 <= loss_percent < 100):
        raise ChaosError("need 0 ≤ jitter_ms ≤ delay_ms ≤ 60000 and 0 ≤ loss_percent < 100")
    container = target.pick(instance)
    slot = slot_of(container)
    kind = "latency" if delay_ms else "loss"
    spec = " ".join(
        part
        for part in (
            f"delay {delay_ms:g}ms" if delay_ms else "",
            f"{jitter_ms:g}ms" if delay_ms and jitter_ms else "",
            f"loss {loss_percent:g}%" if loss_percent else "",
        )
        if part
    )
    if not spec:
        raise ChaosError("give delay_ms or loss_percent")
    used = mechanism
    detail = ""
    if mechanism in {"auto", "netem"} and _netem_supported is not False:
        command = ["tc", "qdisc", "replace", "dev", "eth0", "root", "netem", *spec.split()]
        code, output = run_helper(target, container, command)
        if code == 0:
            _netem_supported, used = True, "netem"
        elif any(marker in output for marker in _NETEM_MISSING):
            _netem_supported = False
            if mechanism == "netem":
                raise ChaosError(f"this kernel has no netem qdisc ({output})")
        else:
            raise ChaosError(f"tc refused `netem {spec}` on {slot}: {output}")
    if used != "netem":
        used = "proxy"
        detail = _start_proxy(target, container, delay_ms, jitter_ms, loss_percent)
    added = time.time()
    record: dict[str, Any] = {
        "kind": kind,
        "instance": slot,
        "container": container.id,
        "spec": spec,
        "mechanism": used,
        "helper": detail or None,
        "added": added,
        "removed": None,
        "lb_down_after_s": None,
    }
    state.append("faults", record)
    state.event(f"{kind} on {slot}: {spec} ({used})", instance=slot, state=f"+{kind}")
    if watch_lb_s > 0:
        record["lb_down_after_s"] = _watch_lb(target, state, slot, added, watch_lb_s)
    return record


def _start_proxy(
    target: Target, container: Container, delay_ms: float, jitter_ms: float, loss_percent: float
) -> str:
    """Start the proxy helper, then point the LB at it; returns the helper's name."""
    ip = target.address(container)
    if ip is None:
        raise ChaosError(f"{slot_of(container)} is not on the cluster network")
    port = target.config.service.port
    command = [
        "python3",
        "-u",
        "-c",
        PROXY_SCRIPT,
        str(PROXY_PORT),
        str(port),
        str(delay_ms / 1000),
        str(jitter_ms / 1000),
        str(loss_percent / 100),
    ]
    helper = docker_client().containers.run(
        command=command, **_helper_spec(target, container, "proxy")
    )
    for _ in deadline_loop(_PROXY_READY_TIMEOUT_S, 0.1):
        helper.reload()
        if b"proxy ready" in helper.logs() or helper.status not in {"created", "running"}:
            break
    if b"proxy ready" not in helper.logs():
        output = helper.logs().decode(errors="replace").strip()[-300:]
        helper.remove(force=True)
        raise ChaosError(f"the latency proxy did not start on {slot_of(container)}: {output}")
    target.runtime().set_address(slot_of(container), ip, PROXY_PORT)
    return str(helper.name)


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


def _network(target: Target) -> Any:
    import docker.errors

    try:
        network = docker_client().networks.get(target.network_name)
    except docker.errors.NotFound:
        raise ChaosError(f"cluster {target.cluster!r} has no network; is the sandbox up?") from None
    labels = network.attrs.get("Labels") or {}
    if labels.get(f"{LABEL}cluster") != target.cluster:
        raise ChaosError(f"network {target.network_name} was not made by Cautious")
    return network


def cut_off(target: Target, state: RunState, instance: str) -> dict[str, Any]:
    """Disconnect one instance from the cluster network (the LB can no longer reach it)."""
    container = target.pick(instance)
    slot = slot_of(container)
    _network(target).disconnect(container, force=True)
    record = {
        "kind": "network-cut",
        "instance": slot,
        "container": container.id,
        "spec": f"disconnected from {target.network_name}",
        "mechanism": "docker network disconnect",
        "helper": None,
        "added": time.time(),
        "removed": None,
        "lb_down_after_s": None,
    }
    state.append("faults", record)
    state.event(f"{slot} cut off from {target.network_name}", instance=slot, state="cut off")
    return record


def reconnect(target: Target, state: RunState | None = None, instance: str = "all") -> list[str]:
    """Connect cut-off instances again, under their slot name (HAProxy finds them by DNS)."""
    network = _network(target)
    done = []
    for container in target.instances(running_only=False):
        slot = slot_of(container)
        if instance not in {"all", slot}:
            continue
        container.reload()
        if target.network_name in (container.attrs["NetworkSettings"].get("Networks") or {}):
            continue
        network.connect(container, aliases=[slot])
        done.append(slot)
        if state is not None:
            _mark_removed(state, slot, "network-cut")
            state.event(
                f"{slot} reconnected to {target.network_name}", instance=slot, state="reconnected"
            )
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
    """Freeze (SIGSTOP every process) or thaw instances; ``all`` thaws every paused one."""
    done = []
    if paused:
        container = target.pick(instance)
        container.pause()
        done.append(slot_of(container))
        state.event(f"{slot_of(container)} paused", instance=slot_of(container), state="paused")
        return done
    for container in target.instances(running_only=False):
        slot = slot_of(container)
        if instance in {"all", slot} and container.status == "paused":
            container.unpause()
            done.append(slot)
            state.event(f"{slot} unpaused", instance=slot, state="unpaused")
    return done


# -- leftovers and cleanup ----------------------------------------------------------------------


def _qdisc(target: Target, container: Container, *, delete: bool) -> tuple[str, str]:
    """The instance's eth0 qdisc lines before, and after deleting ours when ``delete``."""
    script = "tc qdisc show dev eth0"
    if delete:
        script += "; echo ---; tc qdisc del dev eth0 root 2>/dev/null; tc qdisc show dev eth0"
    code, output = run_helper(target, container, ["sh", "-c", script])
    if code != 0:
        raise ChaosError(f"tc on {slot_of(container)} failed: {output}")
    before, _, after = output.partition("---")
    return before.strip(), (after if delete else before).strip()


def leftovers(target: Target) -> dict[str, Any]:
    """What a fault could have left behind, checked on the cluster itself (not the run state)."""
    found: dict[str, Any] = {
        "helpers": sorted(str(helper.name) for helper in target.helpers()),
        "qdiscs": {},
        "lb_redirects": {},
        "paused": [],
        "disconnected": [],
    }
    port = target.config.service.port
    stats = {}
    with suppressed("reading the load balancer's servers"):
        stats = target.runtime().stats()
    for container in target.instances(running_only=False):
        slot = slot_of(container)
        if container.status == "paused":
            found["paused"].append(slot)
            continue
        if container.status != "running":
            continue
        if target.address(container) is None:
            found["disconnected"].append(slot)
        output, _ = _qdisc(target, container, delete=False)
        if "netem" in output:
            found["qdiscs"][slot] = output
        address = stats[slot].address if slot in stats else ""
        if address and not address.endswith(f":{port}"):
            found["lb_redirects"][slot] = address
    found["count"] = sum(len(value) for value in found.values())
    return found


def clear(target: Target, state: RunState | None = None, instance: str = "all") -> list[str]:
    """Undo every fault on the cluster (or on one instance): thaw, reconnect, drop netem qdiscs,
    point the LB back, remove helpers. Best effort per item, so one failure does not leave the
    rest in place; :func:`leftovers` tells afterwards whether anything survived."""
    done: list[str] = []
    with suppressed("unpausing instances"):
        for container in target.instances(running_only=False):
            if instance in {"all", slot_of(container)} and container.status == "paused":
                container.unpause()
                done.append(f"unpaused {slot_of(container)}")
    with suppressed("reconnecting instances"):
        done += [f"reconnected {slot}" for slot in reconnect(target, state, instance)]
    port = target.config.service.port
    runtime = None
    stats = {}
    with suppressed("reading the load balancer's servers"):
        runtime = target.runtime()
        stats = runtime.stats()
    for container in target.instances():
        slot = slot_of(container)
        if instance not in {"all", slot}:
            continue
        with suppressed(f"clearing the qdisc of {slot}"):
            before, after = _qdisc(target, container, delete=True)
            if "netem" in after:
                raise ChaosError(f"a netem qdisc is still on {slot}: {after}")
            if "netem" in before:
                done.append(f"removed netem from {slot}")
        if runtime is not None and slot in stats and not stats[slot].address.endswith(f":{port}"):
            with suppressed(f"pointing the load balancer back at {slot}"):
                ip = target.address(container)
                if ip is not None:
                    runtime.set_address(slot, ip, port)
                    done.append(f"pointed the load balancer back at {slot}:{port}")
    for helper in target.helpers():
        if instance not in {"all", (helper.labels or {}).get(f"{LABEL}slot")}:
            continue
        with suppressed(f"removing helper {helper.name}"):
            helper.remove(force=True)
            done.append(f"removed helper {helper.name}")
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
