"""Where an activity acts: the cautious.yaml, the cluster, and the experiment's run state.

Every activity finds its target the same way, so an experiment file never names a machine:

1. the experiment's ``configuration`` keys ``cautious_config``, ``cautious_cluster`` and
   ``cautious_out_dir`` (``chaos run --var KEY=VALUE`` sets them; an empty value means unset);
2. the environment: ``CAUTIOUS_CONFIG``, ``CAUTIOUS_CLUSTER``, ``CAUTIOUS_CHAOS_OUT``;
3. ``./cautious.yaml`` and the cluster it names.

The *run state* (``<state_dir>/<cluster>/chaos/run.json``) is how the activities of one
experiment speak to each other across calls: the control opens it, ``start_load`` and
``start_rollout`` record their background processes there, fault actions record what they
changed so rollbacks and the game day can undo and check it, and probes read it to know whether
the method has started (a steady-state probe runs before *and* after the method with the same
arguments, and must not pass after the method just because nothing happened).

Only the standard library is imported at module level: ``chaos validate`` imports every activity
module, and importing Docker, pydantic or locust there would slow it down or worse (FIELD-NOTES).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cautious.cluster.lb import HAProxyRuntime
    from cautious.config import Config
    from docker import DockerClient
    from docker.models.containers import Container

__all__ = [
    "CLUSTER_ENV",
    "CLUSTER_KEY",
    "CONFIG_ENV",
    "CONFIG_KEY",
    "HELPER_ROLE",
    "OUT_ENV",
    "OUT_KEY",
    "ChaosError",
    "RunState",
    "Target",
    "deadline_loop",
    "default_out_dir",
    "docker_client",
    "log",
    "slot_of",
    "suppressed",
    "target",
]

CONFIG_KEY, CONFIG_ENV = "cautious_config", "CAUTIOUS_CONFIG"
CLUSTER_KEY, CLUSTER_ENV = "cautious_cluster", "CAUTIOUS_CLUSTER"
OUT_KEY, OUT_ENV = "cautious_out_dir", "CAUTIOUS_CHAOS_OUT"
LABEL = "cautious."
HELPER_ROLE = "chaos-helper"
_DOCKER_TIMEOUT_S = 60

log = logging.getLogger("chaostoolkit")


class ChaosError(Exception):
    """An activity could not do what it was asked; chaoslib records a failed activity."""


@dataclass(frozen=True)
class Target:
    """The configuration and cluster an experiment acts on."""

    config_path: Path
    config: Config
    out_dir: Path | None  # from cautious_out_dir / CAUTIOUS_CHAOS_OUT, if given

    @property
    def cluster(self) -> str:
        return self.config.cluster.name

    @property
    def chaos_dir(self) -> Path:
        """``<state_dir>/<cluster>/chaos``: run state, locks and background process files."""
        return self.config.path(self.config.state_dir) / self.cluster / "chaos"

    @property
    def network_name(self) -> str:
        return f"cautious-{self.cluster}"

    def container_name(self, slot: str) -> str:
        return f"cautious-{self.cluster}-{slot}"

    # -- containers ----------------------------------------------------------------------------

    def owned(self, container: Container, role: str | None = None) -> bool:
        """Only containers Cautious made for *this* cluster may be touched."""
        labels = container.labels or {}
        return (
            labels.get(f"{LABEL}managed") == "true"
            and labels.get(f"{LABEL}cluster") == self.cluster
            and (role is None or labels.get(f"{LABEL}role") == role)
        )

    def instances(self, *, running_only: bool = True) -> list[Container]:
        """The cluster's instance containers, ordered by slot number (sample-1, sample-2 …)."""
        containers = docker_client().containers.list(
            all=not running_only,
            filters={"label": [f"{LABEL}cluster={self.cluster}", f"{LABEL}role=instance"]},
        )
        owned = [item for item in containers if self.owned(item, "instance")]
        return sorted(owned, key=lambda item: _slot_order(slot_of(item)))

    def instance(self, name: str) -> Container:
        """One instance container by slot name, refusing anything not made for this cluster."""
        import docker.errors

        try:
            container = docker_client().containers.get(self.container_name(name))
        except docker.errors.NotFound:
            raise ChaosError(f"cluster {self.cluster!r} has no instance {name!r}") from None
        if not self.owned(container, "instance"):
            raise ChaosError(f"{container.name} is not an instance Cautious made for this cluster")
        return container

    def pick(self, selector: str) -> Container:
        """An instance by name, or ``first`` / ``last`` / ``random`` among the running ones.

        Rolling plans go through slots in order, so ``last`` is the instance a rollout reaches
        last (still on the old release mid-rollout) and ``first`` the one it replaced first.
        """
        if selector not in {"first", "last", "random"}:
            return self.instance(selector)
        running = self.instances()
        if not running:
            raise ChaosError(f"cluster {self.cluster!r} has no running instance to pick")
        if selector == "first":
            return running[0]
        if selector == "last":
            return running[-1]
        return random.choice(running)

    def lb(self) -> Container:
        """The load balancer container of the cluster."""
        import docker.errors

        try:
            container = docker_client().containers.get(self.container_name("lb"))
        except docker.errors.NotFound:
            raise ChaosError(
                f"cluster {self.cluster!r} has no load balancer; run `invoke sandbox.up`"
            ) from None
        if not self.owned(container, "lb"):
            raise ChaosError(f"{container.name} is not a load balancer Cautious made")
        return container

    def published_port(self, container: Container, port: int) -> int | None:
        """The 127.0.0.1 port Docker published ``port`` of ``container`` on (None if none)."""
        container.reload()
        bindings = (container.attrs.get("NetworkSettings", {}).get("Ports") or {}).get(
            f"{port}/tcp"
        )
        for binding in bindings or []:
            if binding.get("HostPort"):
                return int(binding["HostPort"])
        return None

    def runtime(self) -> HAProxyRuntime:
        """A client for the running load balancer's runtime API."""
        from cautious.cluster.lb import RUNTIME_PORT, HAProxyRuntime

        port = self.published_port(self.lb(), RUNTIME_PORT)
        if port is None:
            raise ChaosError("the load balancer publishes no runtime API port")
        return HAProxyRuntime("127.0.0.1", port, timeout_s=5.0)

    def address(self, container: Container) -> str | None:
        """The instance's IP on the cluster network (None when it is cut off)."""
        container.reload()
        networks = container.attrs.get("NetworkSettings", {}).get("Networks") or {}
        ip = (networks.get(self.network_name) or {}).get("IPAddress")
        return str(ip) if ip else None

    def helpers(self) -> list[Container]:
        """Chaos helper containers of this cluster (tc/proxy), running or not."""
        containers = docker_client().containers.list(
            all=True,
            filters={"label": [f"{LABEL}cluster={self.cluster}", f"{LABEL}role={HELPER_ROLE}"]},
        )
        return [item for item in containers if self.owned(item, HELPER_ROLE)]


def slot_of(container: Container) -> str:
    """The slot (instance) name a container was started for."""
    labels = container.labels or {}
    return str(labels.get(f"{LABEL}slot") or container.name)


def _slot_order(name: str) -> tuple[str, int]:
    stem, _, number = name.rpartition("-")
    return (stem, int(number)) if number.isdigit() else (name, 0)


def target(configuration: Mapping[str, Any] | None) -> Target:
    """Resolve configuration keys, then environment, then defaults (see the module docstring)."""
    from cautious.config import load_config
    from cautious.exceptions import CautiousError

    settings = configuration or {}
    config_path = _setting(settings, CONFIG_KEY, CONFIG_ENV) or "cautious.yaml"
    cluster = _setting(settings, CLUSTER_KEY, CLUSTER_ENV)
    out_dir = _setting(settings, OUT_KEY, OUT_ENV)
    try:
        config = load_config(config_path, {"cluster.name": cluster} if cluster else None)
    except CautiousError as exc:
        raise ChaosError(f"cautious: {exc}") from None
    return Target(
        config_path=Path(config_path).resolve(),
        config=config,
        out_dir=Path(out_dir).resolve() if out_dir else None,
    )


def _setting(settings: Mapping[str, Any], key: str, env: str) -> str | None:
    value = settings.get(key)
    if value in (None, ""):
        value = os.environ.get(env)
    return str(value) if value not in (None, "") else None


_client: DockerClient | None = None


def docker_client() -> DockerClient:
    """One client per process for the engine at DOCKER_HOST; every call bounded by a timeout."""
    global _client
    if _client is None:
        import docker
        import docker.errors
        import requests.exceptions

        try:
            client = docker.from_env(timeout=_DOCKER_TIMEOUT_S)
            client.ping()
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise ChaosError(f"no Docker engine answers ({type(exc).__name__}: {exc})") from None
        _client = client
    return _client


def deadline_loop(timeout_s: float, poll_s: float = 0.2) -> Iterator[float]:
    """Yield the elapsed seconds every ``poll_s`` until ``timeout_s`` has passed (bounded waits)."""
    started = time.monotonic()
    while True:
        elapsed = time.monotonic() - started
        yield elapsed
        if elapsed >= timeout_s:
            return
        time.sleep(min(poll_s, max(0.0, timeout_s - elapsed)))


class RunState:
    """The JSON record of the experiment running on a cluster (see the module docstring).

    Activities run one at a time in the chaos process; the background processes never write
    here. So a read-modify-write with an atomic rename is enough, no lock needed.
    """

    def __init__(self, target: Target) -> None:
        self.target = target
        self.path = target.chaos_dir / "run.json"

    def read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def write(self, data: Mapping[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        scratch = self.path.with_suffix(".tmp")
        scratch.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        scratch.replace(self.path)

    def update(self, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        data = self.read()
        change(data)
        self.write(data)
        return data

    def append(self, key: str, item: Mapping[str, Any]) -> None:
        self.update(lambda data: data.setdefault(key, []).append(dict(item)))

    def event(self, what: str, **detail: Any) -> None:
        """Note something the experiment did to the cluster, for the report's timeline."""
        self.append("events", {"t": time.time(), "what": what, **detail})
        log.info("cautious: %s", what)

    def out_dir(self) -> Path:
        """Where this run's files go: the control's folder, ``cautious_out_dir``, or a new one."""
        data = self.read()
        if data.get("out_dir"):
            return Path(data["out_dir"])
        folder = self.target.out_dir or default_out_dir(self.target, "adhoc")
        self.update(lambda state: state.setdefault("out_dir", str(folder)))
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def method_started(self) -> bool | None:
        """True/False once the control has opened the run; None without the control."""
        data = self.read()
        if not data.get("control"):
            return None
        return bool(data.get("method_started"))


def default_out_dir(target: Target, title: str) -> Path:
    """``<reports_dir>/chaos/<UTC stamp>-<title slug>``: one folder per experiment run."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:48] or "experiment"
    return target.config.path(target.config.reports_dir) / "chaos" / f"{stamp}-{slug}"


@contextlib.contextmanager
def suppressed(what: str) -> Iterator[None]:
    """Best-effort cleanup: log what failed and go on with the rest."""
    try:
        yield
    except Exception as exc:
        log.warning("cautious: %s failed: %s", what, exc)
