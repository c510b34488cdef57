"""The ``docker`` backend: the sandbox's instances and HAProxy as containers on one engine.

Everything it creates carries ``cautious.managed=true`` and ``cautious.cluster=<name>`` labels,
lives on a user-defined bridge network ``cautious-<cluster>`` (instances are reachable by their
slot name through Docker's DNS), and publishes ports on 127.0.0.1 only. ``teardown`` removes
what carries the cluster's label and nothing else.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import tarfile
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests.exceptions
from docker.models.containers import Container

from cautious.backends.base import (
    Instance,
    InstanceSpec,
    InstanceState,
    LbAddressing,
    LbEndpoint,
    LbRestart,
    NetworkFault,
    NetworkLeftovers,
    Occupant,
    Pace,
    slot_names,
)
from cautious.backends.dependencies import DependencySpec, DependencyState, OneOff
from cautious.backends.docker import faults, images, stateful
from cautious.backends.docker.baseimage import ensure_base_image
from cautious.backends.docker.images import LABEL_PREFIX, build_image, managed_labels
from cautious.backends.docker.state import VolumeStore
from cautious.cluster.health import probe
from cautious.cluster.lb import FRONTEND_PORT, RUNTIME_PORT, HAProxyRuntime
from cautious.config import Config
from cautious.exceptions import PrerequisiteError, SandboxError
from cautious.release import Release

__all__ = ["HAPROXY_CONFIG_PATH", "DockerBackend", "connect"]

HAPROXY_CONFIG_PATH = "/usr/local/etc/haproxy/haproxy.cfg"
_LB_IMAGE = "cautious/haproxy:latest"
# HAProxy on the same base as the service; a base without haproxy gets it from Debian's mirror.
_LB_DOCKERFILE = f"""
ARG BASE_IMAGE
FROM ${{BASE_IMAGE}}
RUN command -v /usr/sbin/haproxy >/dev/null 2>&1 || (apt-get update \\
    && apt-get install -y --no-install-recommends haproxy && rm -rf /var/lib/apt/lists/*)
RUN mkdir -p {Path(HAPROXY_CONFIG_PATH).parent}
EXPOSE {FRONTEND_PORT} {RUNTIME_PORT}
STOPSIGNAL SIGUSR1
CMD ["/usr/sbin/haproxy", "-db", "-f", "{HAPROXY_CONFIG_PATH}"]
"""
_ENGINE_TIMEOUT_S = 120
_PORT_TIMEOUT_S = 5.0
_LB_START_TIMEOUT_S = 20.0
_KILL_TIMEOUT_S = 10.0
# Docker's embedded DNS: slots resolve to their containers by alias, empty slots do not resolve.
# ``init-addr none``: resolving empty slots at start-up would block HAProxy for many seconds.
_RESOLVERS = """resolvers docker
    nameserver dns 127.0.0.11:53
    resolve_retries 3
    timeout resolve 500ms
    timeout retry 500ms
    hold valid 1s
    hold nx 1s
    hold other 1s
    hold refused 1s
    hold timeout 1s
    hold obsolete 1s"""


def connect() -> docker.DockerClient:
    """A client for the engine at ``DOCKER_HOST`` (or the default socket) that answers."""
    try:
        client = docker.from_env(timeout=_ENGINE_TIMEOUT_S)
        client.ping()
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        raise PrerequisiteError(
            f"no Docker engine answers at {where} ({type(exc).__name__}); "
            "start the engine or set DOCKER_HOST"
        ) from None
    return client


class DockerBackend:
    """Instances and the load balancer of one cluster, as labelled containers."""

    name = "docker"
    pace = Pace()

    def __init__(
        self,
        config: Config,
        *,
        client: docker.DockerClient | None = None,
        say: Callable[[str], None] = print,
    ) -> None:
        self.config = config
        self.cluster = config.cluster.name
        self.client = client or connect()
        self.say = say
        self.network_name = f"cautious-{self.cluster}"
        self.netem_supported: bool | None = None  # found out by the first latency fault
        # where each instance started here answers: readiness polls then cost no engine call
        self._local_urls: dict[str, str] = {}
        self._cluster_label = f"{LABEL_PREFIX}cluster={self.cluster}"
        self._state = VolumeStore(self)

    # -- releases ----------------------------------------------------------------------------

    def find_release(self, label: str) -> Release | None:
        return images.find_release(self.client, self.config, label)

    def build_release(self, label: str, env: Mapping[str, str], git_sha: str | None) -> Release:
        return images.build_release(
            self.client, self.config, label, env=env, git_sha=git_sha, say=self.say
        )

    def release_by_digest(self, label: str, digest: str) -> Release:
        return images.release_by_digest(self.client, label, digest)

    # -- instances ---------------------------------------------------------------------------

    def slots(self) -> list[str]:
        return slot_names(self.config.service.name)

    def start(self, spec: InstanceSpec) -> Instance:
        self._remove_if_present(self._container_name(spec.slot))
        network = self.ensure_network()
        try:
            container = self.client.containers.run(
                spec.release.image,
                command=list(spec.command) if spec.command else None,
                name=self._container_name(spec.slot),
                hostname=spec.slot,
                detach=True,
                environment={**spec.env, "CAUTIOUS_INSTANCE": spec.slot},
                labels=self.labels(
                    role="instance",
                    slot=spec.slot,
                    release=spec.release.label,
                    digest=spec.release.digest,
                    port=str(spec.port),
                ),
                network=network.name,
                networking_config={
                    network.name: self.client.api.create_endpoint_config(aliases=[spec.slot])
                },
                ports={f"{spec.port}/tcp": ("127.0.0.1", None)},
            )
        except docker.errors.APIError as exc:
            raise SandboxError(
                f"could not start {spec.slot} on {spec.release.label}: {exc.explanation or exc}"
            ) from None
        started = self._describe(self._wait_for_port(container, spec.port))
        if started.local_url:
            self._local_urls[spec.slot] = started.local_url
        return started

    def _wait_for_port(self, container: Container, port: int) -> Container:
        """The published port shows up a moment after the start; poll for it (bounded)."""
        deadline = time.monotonic() + _PORT_TIMEOUT_S
        while True:
            container.reload()
            if _published_port(container, port) or container.status not in {"created", "running"}:
                return container
            if time.monotonic() >= deadline:
                return container
            time.sleep(0.05)

    def stop(self, name: str, grace_s: float, *, remove: bool = True) -> None:
        self._local_urls.pop(name, None)
        container = self.find(self._container_name(name))
        if container is None:
            return
        try:
            if container.status in {"running", "paused", "restarting"}:
                if container.status == "paused":
                    container.unpause()
                container.stop(timeout=max(0, round(grace_s)))
            if remove:
                container.remove(force=True)
        except docker.errors.NotFound:
            return
        except docker.errors.APIError as exc:
            raise SandboxError(f"could not stop {name}: {exc.explanation or exc}") from None

    def instance(self, name: str) -> Instance:
        container = self.find(self._container_name(name))
        if container is None:
            return Instance(name, "", "", "missing", None, None)
        return self._describe(container)

    def instances(self) -> list[Instance]:
        return [self._describe(container) for container in self.instance_containers()]

    def instance_containers(self) -> list[Container]:
        """The cluster's instance containers, in slot order."""
        containers = self.client.containers.list(
            all=True, filters={"label": [self._cluster_label, f"{LABEL_PREFIX}role=instance"]}
        )
        return sorted(containers, key=lambda item: _slot_order(self.slot_of(item)))

    def slot_of(self, container: Container) -> str:
        """The slot (instance name) a container was started for."""
        return str((container.labels or {}).get(f"{LABEL_PREFIX}slot") or container.name)

    def network_address(self, container: Container) -> str | None:
        """The container's IP on the cluster network (None when it is cut off)."""
        container.reload()
        return self._ip(container)

    def _ip(self, container: Container) -> str | None:
        networks = container.attrs.get("NetworkSettings", {}).get("Networks") or {}
        ip = (networks.get(self.network_name) or {}).get("IPAddress")
        return str(ip) if ip else None

    def logs(self, name: str, tail: int = 50) -> str:
        container = self.find(self._container_name(name))
        if container is None:
            return ""
        raw: bytes = container.logs(tail=tail)
        return raw.decode(errors="replace")

    def probe(self, name: str, path: str, *, timeout_s: float) -> int:
        url = self._local_urls.get(name) or self.instance(name).local_url
        return probe(url + path, timeout_s=timeout_s) if url else 0

    # -- faults ------------------------------------------------------------------------------

    def kill(self, name: str, signal: str) -> InstanceState:
        container = self.instance_container(name)
        container.kill(signal=signal)
        if signal not in {"SIGKILL", "KILL", "9"}:
            return self._describe(container).state
        deadline = time.monotonic() + _KILL_TIMEOUT_S
        while True:  # the engine takes a moment to notice that the process is gone
            container.reload()
            if container.status != "running" or time.monotonic() >= deadline:
                return _state_of(container.status)
            time.sleep(self.pace.ready_poll_s)

    def restart(self, name: str, grace_s: float) -> None:
        self._local_urls.pop(name, None)  # a restarted container may publish another port
        self.instance_container(name).restart(timeout=max(0, round(grace_s)))

    def pause(self, name: str) -> None:
        self.instance_container(name).pause()

    def unpause(self, name: str) -> None:
        self.instance_container(name).unpause()

    # -- network faults (see ``faults``) ------------------------------------------------------

    def add_network_fault(
        self, name: str, *, delay_ms: float, jitter_ms: float, loss_percent: float, mechanism: str
    ) -> NetworkFault:
        return faults.add_network_fault(
            self,
            name,
            delay_ms=delay_ms,
            jitter_ms=jitter_ms,
            loss_percent=loss_percent,
            mechanism=mechanism,
        )

    def cut_off(self, name: str) -> NetworkFault:
        return faults.cut_off(self, name)

    def reconnect(self, name: str) -> bool:
        return faults.reconnect(self, name)

    def clear_network_faults(self, name: str | None = None) -> list[str]:
        return faults.clear(self, name)

    def network_leftovers(self) -> NetworkLeftovers:
        return faults.leftovers(self)

    # -- load balancer -----------------------------------------------------------------------

    def lb_addressing(self) -> LbAddressing:
        port = self.config.service.port
        return LbAddressing(
            servers=tuple((slot, f"{slot}:{port}") for slot in self.slots()),
            sections=_RESOLVERS,
            default_server="init-addr none resolvers docker",
        )

    def ensure_lb(self, config_text: str) -> LbEndpoint:
        digest = hashlib.sha256(config_text.encode()).hexdigest()[:16]
        image_id = self._build_lb_image()
        name = self._container_name("lb")
        current = self.find(name)
        if (
            current is not None
            and current.status == "running"
            and current.labels.get(f"{LABEL_PREFIX}lb-config") == digest
            and current.image.id == image_id
        ):
            return self._lb_endpoint(current)
        self._remove_if_present(name)
        network = self.ensure_network()
        try:
            container = self.client.containers.create(
                image_id,
                name=name,
                hostname="lb",
                labels=self.labels(role="lb", **{"lb-config": digest}),
                network=network.name,
                ports={
                    f"{FRONTEND_PORT}/tcp": ("127.0.0.1", None),
                    f"{RUNTIME_PORT}/tcp": ("127.0.0.1", None),
                },
            )
            container.put_archive(str(Path(HAPROXY_CONFIG_PATH).parent), _tar_of(config_text))
            container.start()
        except docker.errors.APIError as exc:
            raise SandboxError(f"could not start HAProxy: {exc.explanation or exc}") from None
        return self._wait_for_lb(container)

    def _build_lb_image(self) -> str:
        base = ensure_base_image(self.client, self.config.service.base_image, self.say)
        return build_image(
            self.client,
            "the HAProxy image",
            fileobj=io.BytesIO(_LB_DOCKERFILE.encode()),
            buildargs={"BASE_IMAGE": base},
            tag=_LB_IMAGE,
            labels=managed_labels(role="lb-image"),
        )

    def lb(self) -> LbEndpoint | None:
        container = self.find(self._container_name("lb"))
        if container is None or container.status != "running":
            return None
        return self._lb_endpoint(container)

    def lb_runtime(self) -> HAProxyRuntime | None:
        endpoint = self.lb()
        return HAProxyRuntime(endpoint.runtime_host, endpoint.runtime_port) if endpoint else None

    def restart_lb(self, grace_s: float) -> LbRestart:
        """Soft-stop HAProxy and recreate its container with the *same* host ports.

        ``docker restart`` would move the load balancer to new host ports (they are published
        without a fixed number), cutting every client off for good — a sandbox artefact, not an
        LB restart. The new container has the old one's image, labels, network, haproxy.cfg and
        ports; HAProxy's runtime state (flags, weights, addresses) is lost, as in any restart.
        """
        old = self.find(self._container_name("lb"))
        if old is None:
            raise SandboxError(f"cluster {self.cluster!r} has no load balancer to restart")
        bindings = old.attrs["NetworkSettings"]["Ports"] or {}
        ports = {
            key: (value[0]["HostIp"] or "127.0.0.1", int(value[0]["HostPort"]))
            for key, value in bindings.items()
            if value
        }
        stream, _ = old.get_archive(HAPROXY_CONFIG_PATH)
        archive = b"".join(stream)
        spec = {
            "image": old.image.id,
            "name": old.name,
            "hostname": "lb",
            "labels": dict(old.labels),
            "network": self.network_name,
        }
        started = time.monotonic()
        # docker stop sends the image's STOPSIGNAL, SIGUSR1: HAProxy's soft stop (listeners
        # close at once, sessions in flight may finish), and SIGKILL after grace_s. Under load
        # the engine takes another ~3.5 s to tear the container down (fuse-overlayfs,
        # docker-proxy).
        old.stop(timeout=max(0, math.ceil(grace_s)))
        old.remove(force=True)
        stopped_s = time.monotonic() - started
        same_address = True
        try:
            new = self.client.containers.create(ports=ports, **spec)
        except docker.errors.APIError as exc:  # a port was taken meanwhile: keep the cluster up
            self.say(f"cannot reuse the load balancer's ports ({exc}); publishing new ones")
            new = self.client.containers.create(
                ports={key: (host, None) for key, (host, _) in ports.items()}, **spec
            )
            same_address = False
        new.put_archive(str(Path(HAPROXY_CONFIG_PATH).parent), archive)
        new.start()
        self._wait_for_lb(new)
        return LbRestart(
            stopped_s=stopped_s, down_s=time.monotonic() - started, same_address=same_address
        )

    # -- teardown ----------------------------------------------------------------------------

    # -- dependencies and one-off commands (see ``stateful``) ----------------------------------

    def ensure_dependency(self, spec: DependencySpec) -> DependencyState:
        return stateful.ensure_dependency(self, spec)

    def run_once(
        self,
        release: Release,
        command: Sequence[str],
        *,
        env: Mapping[str, str],
        timeout_s: float,
        files: Mapping[str, bytes] | None = None,
    ) -> OneOff:
        return stateful.run_once(self, release, command, env=env, timeout_s=timeout_s, files=files)

    def state_store(self) -> VolumeStore:
        return self._state

    def occupants(self) -> list[Occupant]:
        """Running containers on the cluster's network or carrying its label, each with the
        image it really runs (its labels may say otherwise)."""
        found: dict[str, Container] = {}
        for filters in ({"network": self.network_name}, {"label": self._cluster_label}):
            found.update((item.id, item) for item in self.client.containers.list(filters=filters))
        return [self._occupant(container) for container in found.values()]

    def _occupant(self, container: Container) -> Occupant:
        labels = container.labels or {}
        ours = labels.get(f"{LABEL_PREFIX}cluster") == self.cluster
        role = labels.get(f"{LABEL_PREFIX}role", "") if ours else ""
        slot = self.slot_of(container) if role == "instance" else ""
        return Occupant(str(container.name), str(container.attrs.get("Image", "")), role, slot)

    def teardown(self) -> list[str]:
        """Remove the cluster's containers, network and state volume (its lock and journal:
        a cluster created again starts a new history)."""
        self._local_urls.clear()
        self._state.forget()
        containers = self.client.containers.list(all=True, filters={"label": self._cluster_label})

        def remove(container: Container) -> str | None:
            try:
                container.remove(force=True)
            except docker.errors.NotFound:
                return None
            return f"container {container.name}"

        # In parallel: killing HAProxy alone takes seconds on this engine.
        with ThreadPoolExecutor(max_workers=max(1, len(containers))) as pool:
            removed = [name for name in pool.map(remove, containers) if name]
        for network in self.client.networks.list(filters={"label": self._cluster_label}):
            network.remove()
            removed.append(f"network {network.name}")
        for volume in self.client.volumes.list(filters={"label": self._cluster_label}):
            volume.remove(force=True)
            removed.append(f"volume {volume.name}")
        return removed

    # -- helpers -----------------------------------------------------------------------------

    # labels, find and ensure_network are public: the ssh-sandbox runs its host containers on
    # this cluster's network, labelled like the rest, so one teardown removes them all.

    def labels(self, **extra: str) -> dict[str, str]:
        return managed_labels(cluster=self.cluster, **extra)

    def _container_name(self, slot: str) -> str:
        return f"cautious-{self.cluster}-{slot}"

    def find(self, container_name: str) -> Container | None:
        try:
            container: Container = self.client.containers.get(container_name)
        except docker.errors.NotFound:
            return None
        if container.labels.get(f"{LABEL_PREFIX}cluster") != self.cluster:
            raise SandboxError(
                f"container {container_name} exists but was not created by Cautious for "
                f"cluster {self.cluster!r}; remove or rename it yourself"
            )
        return container

    def instance_container(self, name: str) -> Container:
        """The container of instance ``name``; SandboxError when the cluster has none there."""
        container = self.find(self._container_name(name))
        if container is None or container.labels.get(f"{LABEL_PREFIX}role") != "instance":
            raise SandboxError(f"cluster {self.cluster!r} has no instance {name!r}")
        return container

    def _remove_if_present(self, container_name: str) -> None:
        container = self.find(container_name)
        if container is not None:
            container.remove(force=True)

    def ensure_network(self) -> Any:
        for network in self.client.networks.list(names=[self.network_name]):
            if network.name == self.network_name:
                return network
        return self.client.networks.create(
            self.network_name, driver="bridge", labels=self.labels(role="network")
        )

    def _describe(self, container: Container) -> Instance:
        labels = container.labels
        port = int(labels.get(f"{LABEL_PREFIX}port", "0"))
        state = container.attrs.get("State", {})
        ip = self._ip(container)
        return Instance(
            name=self.slot_of(container),
            release=labels.get(f"{LABEL_PREFIX}release", ""),
            digest=labels.get(f"{LABEL_PREFIX}digest", ""),
            state=_state_of(container.status),
            lb_address=(ip, port) if ip else None,
            local_url=_published_url(container, port),
            exit_code=state.get("ExitCode") if container.status == "exited" else None,
            restarts=int(container.attrs.get("RestartCount") or 0),
        )

    def _lb_endpoint(self, container: Container) -> LbEndpoint:
        front = _published_port(container, FRONTEND_PORT)
        runtime = _published_port(container, RUNTIME_PORT)
        if front is None or runtime is None:
            raise SandboxError(f"HAProxy container {container.name} publishes no ports")
        return LbEndpoint(
            url=f"http://127.0.0.1:{front}", runtime_host="127.0.0.1", runtime_port=runtime
        )

    def _wait_for_lb(self, container: Container) -> LbEndpoint:
        """Wait (bounded) until HAProxy's runtime API answers, or report why it died."""
        container.reload()
        if container.status != "running":
            output = container.logs(tail=20).decode(errors="replace").strip()
            raise SandboxError(f"HAProxy did not start: {output[-500:]}")
        endpoint = self._lb_endpoint(container)
        runtime = HAProxyRuntime(endpoint.runtime_host, endpoint.runtime_port)
        try:
            runtime.wait_answering(timeout_s=_LB_START_TIMEOUT_S)
        except SandboxError:
            output = container.logs(tail=20).decode(errors="replace").strip()
            raise SandboxError(f"HAProxy's runtime API never answered: {output[-500:]}") from None
        return endpoint


def _state_of(status: str) -> InstanceState:
    if status == "running":
        return "running"
    if status == "paused":
        return "paused"
    if status in {"created", "restarting"}:
        return "starting"
    return "exited"


def _published_port(container: Container, port: int) -> int | None:
    bindings = container.attrs.get("NetworkSettings", {}).get("Ports", {}) or {}
    for binding in bindings.get(f"{port}/tcp") or []:
        if binding.get("HostPort"):
            return int(binding["HostPort"])
    return None


def _published_url(container: Container, port: int) -> str | None:
    host_port = _published_port(container, port)
    return f"http://127.0.0.1:{host_port}" if host_port else None


def _slot_order(name: str) -> tuple[str, int]:
    stem, _, number = name.rpartition("-")
    return (stem, int(number)) if number.isdigit() else (name, 0)


def _tar_of(config_text: str) -> bytes:
    buffer = io.BytesIO()
    data = config_text.encode()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo(Path(HAPROXY_CONFIG_PATH).name)
        info.size = len(data)
        info.mode = 0o644
        archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()
