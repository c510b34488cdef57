"""The backend interface: where instances (and the sandbox's load balancer) run.

Callers — the sandbox, the rollout runner, chaos actions — speak only this interface, so a
``docker`` sandbox, ``ssh`` hosts (Fabric) or ``local`` processes can be swapped without
changing them, the way httpx swaps transports.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from cautious.release import Release

__all__ = ["Backend", "Instance", "InstanceSpec", "InstanceState", "LbEndpoint"]

InstanceState = Literal["running", "starting", "paused", "exited", "missing"]


@dataclass(frozen=True)
class InstanceSpec:
    """Start ``release`` in ``slot``: the slot name is also the instance name."""

    slot: str
    release: Release
    port: int
    env: Mapping[str, str] = field(default_factory=dict)
    command: Sequence[str] | None = None


@dataclass(frozen=True)
class Instance:
    """One running (or stopped) copy of a release, as the backend sees it now."""

    name: str
    release: str
    digest: str
    state: InstanceState
    lb_address: tuple[str, int] | None  # where the load balancer reaches it
    local_url: str | None  # where this machine reaches it directly (127.0.0.1)
    exit_code: int | None = None


@dataclass(frozen=True)
class LbEndpoint:
    """The load balancer as this machine reaches it."""

    url: str  # http://127.0.0.1:PORT — the cluster's front door
    runtime_host: str
    runtime_port: int


@runtime_checkable
class Backend(Protocol):
    """What every backend provides; all calls are bounded in time."""

    name: str

    def start(self, spec: InstanceSpec) -> Instance:
        """Start a new instance in ``spec.slot``, replacing whatever stopped copy is there."""
        ...

    def stop(self, name: str, grace_s: float) -> None:
        """SIGTERM, wait up to ``grace_s`` for a graceful exit, then kill and remove."""
        ...

    def instance(self, name: str) -> Instance:
        """The instance's current state (``missing`` when there is none)."""
        ...

    def instances(self) -> list[Instance]:
        """Every instance of this cluster, ordered by name."""
        ...

    def logs(self, name: str, tail: int = 50) -> str:
        """The instance's last output lines, for error messages and reports."""
        ...

    def ensure_lb(self, config_text: str) -> LbEndpoint:
        """Run the load balancer with this configuration (recreated only when it changed)."""
        ...

    def lb(self) -> LbEndpoint | None:
        """The running load balancer, if any."""
        ...

    def teardown(self) -> list[str]:
        """Remove everything this backend created for the cluster; return what was removed."""
        ...
