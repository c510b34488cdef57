"""Network faults on a container: latency and loss, network cuts, and what they leave behind.

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

A cut disconnects the container from the cluster network; reconnecting gives it its slot name
back as a DNS alias, so HAProxy finds it again. Every helper carries the cluster's labels and
``cautious.role=chaos-helper``, so :func:`leftovers` and :func:`clear` find exactly them.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import docker.errors
import requests.exceptions
from docker.models.containers import Container

from cautious.backends.base import NetworkFault, NetworkLeftovers
from cautious.backends.docker.images import LABEL_PREFIX, managed_labels
from cautious.cluster.lb import HAProxyRuntime
from cautious.exceptions import PrerequisiteError, SandboxError

if TYPE_CHECKING:
    from cautious.backends.docker.backend import DockerBackend

__all__ = [
    "HELPER_ROLE",
    "PROXY_PORT",
    "PROXY_SCRIPT",
    "add_network_fault",
    "clear",
    "cut_off",
    "leftovers",
    "reconnect",
]

HELPER_ROLE = "chaos-helper"
PROXY_PORT = 47047  # where the fallback proxy listens inside the instance's network namespace
MECHANISMS = ("auto", "netem", "proxy")
_HELPER_TIMEOUT_S = 30.0
_PROXY_READY_TIMEOUT_S = 15.0
_NETEM_MISSING = ("Specified qdisc kind is unknown", "Unknown qdisc")

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


def _helper_spec(backend: DockerBackend, instance: Container, purpose: str) -> dict[str, Any]:
    image = backend.config.service.base_image
    try:
        backend.client.images.get(image)
    except docker.errors.ImageNotFound:
        raise PrerequisiteError(
            f"the helper image {image} is missing; run `invoke sandbox.up`"
        ) from None
    slot = backend.slot_of(instance)
    return {
        "image": image,
        "name": f"cautious-{backend.cluster}-chaos-{slot}-{uuid.uuid4().hex[:6]}",
        "network_mode": f"container:{instance.id}",
        "cap_add": ["NET_ADMIN"],
        "labels": managed_labels(
            cluster=backend.cluster, role=HELPER_ROLE, slot=slot, purpose=purpose
        ),
        "detach": True,
    }


def _run_helper(
    backend: DockerBackend,
    instance: Container,
    command: list[str],
    *,
    timeout_s: float = _HELPER_TIMEOUT_S,
) -> tuple[int, str]:
    """Run ``command`` in the instance's network namespace; (exit code, output). Always removed."""
    helper = backend.client.containers.run(command=command, **_helper_spec(backend, instance, "tc"))
    try:
        try:
            status = helper.wait(timeout=timeout_s)
        except requests.exceptions.RequestException:
            raise SandboxError(f"helper {' '.join(command)} ran past {timeout_s:g} s") from None
        output = helper.logs().decode(errors="replace").strip()
        return int(status.get("StatusCode", 1)), output
    finally:
        with _best_effort(backend, f"removing helper {helper.name}"):
            helper.remove(force=True)


def _helpers(backend: DockerBackend) -> list[Container]:
    """Chaos helper containers of this cluster, running or not."""
    return backend.client.containers.list(  # type: ignore[no-any-return]
        all=True,
        filters={
            "label": [
                f"{LABEL_PREFIX}cluster={backend.cluster}",
                f"{LABEL_PREFIX}role={HELPER_ROLE}",
            ]
        },
    )


# -- latency and loss ---------------------------------------------------------------------------


def add_network_fault(
    backend: DockerBackend,
    name: str,
    *,
    delay_ms: float,
    jitter_ms: float,
    loss_percent: float,
    mechanism: str,
) -> NetworkFault:
    """netem on the instance's eth0, or the proxy where the kernel has no netem."""
    if mechanism not in MECHANISMS:
        raise ValueError(f"mechanism must be one of {', '.join(MECHANISMS)}, not {mechanism!r}")
    container = backend.instance_container(name)
    spec = " ".join(
        part
        for part in (
            f"delay {delay_ms:g}ms" if delay_ms else "",
            f"{jitter_ms:g}ms" if delay_ms and jitter_ms else "",
            f"loss {loss_percent:g}%" if loss_percent else "",
        )
        if part
    )
    if mechanism in {"auto", "netem"} and backend.netem_supported is not False:
        command = ["tc", "qdisc", "replace", "dev", "eth0", "root", "netem", *spec.split()]
        code, output = _run_helper(backend, container, command)
        if code == 0:
            backend.netem_supported = True
            return NetworkFault(spec, "netem")
        if not any(marker in output for marker in _NETEM_MISSING):
            raise SandboxError(f"tc refused `netem {spec}` on {name}: {output}")
        backend.netem_supported = False
        if mechanism == "netem":
            raise SandboxError(f"this kernel has no netem qdisc ({output})")
    helper = _start_proxy(backend, container, delay_ms, jitter_ms, loss_percent)
    return NetworkFault(spec, "proxy", helper)


def _start_proxy(
    backend: DockerBackend,
    container: Container,
    delay_ms: float,
    jitter_ms: float,
    loss_percent: float,
) -> str:
    """Start the proxy helper, then point the LB at it; returns the helper's name."""
    slot = backend.slot_of(container)
    ip = backend.network_address(container)
    if ip is None:
        raise SandboxError(f"{slot} is not on the cluster network")
    command = [
        "python3",
        "-u",
        "-c",
        PROXY_SCRIPT,
        str(PROXY_PORT),
        str(backend.config.service.port),
        str(delay_ms / 1000),
        str(jitter_ms / 1000),
        str(loss_percent / 100),
    ]
    helper = backend.client.containers.run(
        command=command, **_helper_spec(backend, container, "proxy")
    )
    deadline = time.monotonic() + _PROXY_READY_TIMEOUT_S
    while b"proxy ready" not in helper.logs() and time.monotonic() < deadline:
        helper.reload()
        if helper.status not in {"created", "running"}:
            break
        time.sleep(0.1)
    if b"proxy ready" not in helper.logs():
        output = helper.logs().decode(errors="replace").strip()[-300:]
        helper.remove(force=True)
        raise SandboxError(f"the latency proxy did not start on {slot}: {output}")
    _runtime(backend).set_address(slot, ip, PROXY_PORT)
    return str(helper.name)


# -- network cut --------------------------------------------------------------------------------


def _network(backend: DockerBackend) -> Any:
    try:
        network = backend.client.networks.get(backend.network_name)
    except docker.errors.NotFound:
        raise SandboxError(
            f"cluster {backend.cluster!r} has no network; is the sandbox up?"
        ) from None
    labels = network.attrs.get("Labels") or {}
    if labels.get(f"{LABEL_PREFIX}cluster") != backend.cluster:
        raise SandboxError(f"network {backend.network_name} was not made by Cautious")
    return network


def cut_off(backend: DockerBackend, name: str) -> NetworkFault:
    """Disconnect the container from the cluster network (the LB can no longer reach it)."""
    _network(backend).disconnect(backend.instance_container(name), force=True)
    return NetworkFault(f"disconnected from {backend.network_name}", "docker network disconnect")


def reconnect(backend: DockerBackend, name: str) -> bool:
    """Connect a cut-off container again under its slot name (HAProxy finds it by DNS)."""
    container = backend.instance_container(name)
    if backend.network_address(container) is not None:
        return False
    _network(backend).connect(container, aliases=[name])
    return True


# -- leftovers and cleanup ----------------------------------------------------------------------


def _qdisc(backend: DockerBackend, container: Container, *, delete: bool) -> tuple[str, str]:
    """The instance's eth0 qdisc lines before, and after deleting ours when ``delete``."""
    script = "tc qdisc show dev eth0"
    if delete:
        script += "; echo ---; tc qdisc del dev eth0 root 2>/dev/null; tc qdisc show dev eth0"
    code, output = _run_helper(backend, container, ["sh", "-c", script])
    if code != 0:
        raise SandboxError(f"tc on {backend.slot_of(container)} failed: {output}")
    before, _, after = output.partition("---")
    return before.strip(), (after if delete else before).strip()


def _runtime(backend: DockerBackend) -> HAProxyRuntime:
    runtime = backend.lb_runtime()
    if runtime is None:
        raise SandboxError(f"cluster {backend.cluster!r} has no load balancer running")
    return runtime


def _lb_addresses(backend: DockerBackend) -> dict[str, str]:
    """Each server's address at the LB ({} when the LB does not answer: nothing to point back)."""
    try:
        return {name: stat.address for name, stat in _runtime(backend).stats().items()}
    except SandboxError as exc:
        backend.say(f"reading the load balancer's servers failed: {exc}")
        return {}


@contextlib.contextmanager
def _best_effort(backend: DockerBackend, what: str) -> Iterator[None]:
    """One cleanup item: a failure is said and the rest still runs."""
    try:
        yield
    except (
        SandboxError,
        docker.errors.DockerException,
        requests.exceptions.RequestException,
    ) as exc:
        backend.say(f"{what} failed: {exc}")


def leftovers(backend: DockerBackend) -> NetworkLeftovers:
    """Helpers, netem qdiscs, LB redirects and cuts on the running containers of the cluster."""
    port = backend.config.service.port
    addresses = _lb_addresses(backend)
    qdiscs: dict[str, str] = {}
    redirects: dict[str, str] = {}
    disconnected: list[str] = []
    for container in backend.instance_containers():
        slot = backend.slot_of(container)
        if container.status != "running":
            continue
        if backend.network_address(container) is None:
            disconnected.append(slot)
        output, _ = _qdisc(backend, container, delete=False)
        if "netem" in output:
            qdiscs[slot] = output
        address = addresses.get(slot, "")
        if address and not address.endswith(f":{port}"):
            redirects[slot] = address
    return NetworkLeftovers(
        helpers=tuple(sorted(str(helper.name) for helper in _helpers(backend))),
        qdiscs=qdiscs,
        lb_redirects=redirects,
        disconnected=tuple(disconnected),
    )


def clear(backend: DockerBackend, name: str | None) -> list[str]:
    """Drop netem qdiscs, point the LB back at the instances, remove helpers (of ``name``, or
    of every instance). Best effort per item, so one failure does not leave the rest in place;
    :func:`leftovers` tells afterwards whether anything survived."""
    done: list[str] = []
    port = backend.config.service.port
    addresses = _lb_addresses(backend)
    for container in backend.instance_containers():
        slot = backend.slot_of(container)
        if name not in {None, slot} or container.status != "running":
            continue
        with _best_effort(backend, f"clearing the qdisc of {slot}"):
            before, after = _qdisc(backend, container, delete=True)
            if "netem" in after:
                raise SandboxError(f"a netem qdisc is still on {slot}: {after}")
            if "netem" in before:
                done.append(f"removed netem from {slot}")
        ip = backend.network_address(container)
        if slot in addresses and not addresses[slot].endswith(f":{port}") and ip is not None:
            with _best_effort(backend, f"pointing the load balancer back at {slot}"):
                _runtime(backend).set_address(slot, ip, port)
                done.append(f"pointed the load balancer back at {slot}:{port}")
    for helper in _helpers(backend):
        if name not in {None, (helper.labels or {}).get(f"{LABEL_PREFIX}slot")}:
            continue
        with _best_effort(backend, f"removing helper {helper.name}"):
            helper.remove(force=True)
            done.append(f"removed helper {helper.name}")
    return done
