"""The host inventory: the machines of an ssh cluster and the instance names dealt to them.

A host runs several instances of the service, one per port. Each host offers twice as many
ports as it runs instances: the second half are *spare* ports where blue-green's green set and
canaries start beside the running ones. Instance names (``sample-1`` …) are dealt to hosts
round-robin, running ports first, so the first ``N`` names are the cluster's running set and
a rolling deploy moves one instance per host before it comes back to the first host.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from cautious.config import SshConfig

__all__ = ["Host", "Inventory", "Placement"]


@dataclass(frozen=True)
class Host:
    """One machine as the backend uses it (from config, or made by the ssh-sandbox)."""

    name: str  # short, for messages and the journal: host-1, or the address
    address: str
    ssh_port: int
    user: str
    ports: tuple[int, ...]  # running ports first, then spare ones
    instances: int
    lb_address: str
    # Where this machine reaches each instance port, when not at address:port (the
    # ssh-sandbox publishes container ports on 127.0.0.1).
    local_ports: Mapping[int, tuple[str, int]] = field(default_factory=dict, compare=False)

    @property
    def target(self) -> str:
        """``user@address:port``, the way error messages name the host."""
        return f"{self.user}@{self.address}:{self.ssh_port}"

    def local_address(self, port: int) -> tuple[str, int]:
        return self.local_ports.get(port, (self.address, port))


@dataclass(frozen=True)
class Placement:
    """Where one instance name lives: a host and a port on it."""

    slot: str
    host: Host
    port: int


@dataclass(frozen=True)
class Inventory:
    """The hosts of a cluster and the instance names dealt to their ports."""

    service: str
    hosts: tuple[Host, ...]

    @classmethod
    def from_config(cls, ssh: SshConfig, service: str, base_port: int) -> Inventory:
        hosts = []
        for host in ssh.hosts:
            count = host.instances
            ports = host.ports or list(range(base_port, base_port + 2 * count))
            hosts.append(
                Host(
                    name=host.address,
                    address=host.address,
                    ssh_port=host.port,
                    user=host.user or ssh.user,
                    ports=tuple(ports),
                    instances=count,
                    lb_address=host.lb_address or host.address,
                )
            )
        return cls(service, tuple(hosts))

    @property
    def placements(self) -> tuple[Placement, ...]:
        """Every instance name in order: running ports round-robin, then spare ports."""
        order: list[tuple[Host, int]] = []
        running = [list(host.ports[: host.instances]) for host in self.hosts]
        spare = [list(host.ports[host.instances :]) for host in self.hosts]
        for group in (running, spare):
            for index in range(max((len(ports) for ports in group), default=0)):
                order += [
                    (host, ports[index])
                    for host, ports in zip(self.hosts, group, strict=True)
                    if index < len(ports)
                ]
        return tuple(
            Placement(f"{self.service}-{number}", host, port)
            for number, (host, port) in enumerate(order, 1)
        )

    @property
    def running_count(self) -> int:
        return sum(host.instances for host in self.hosts)

    def slot_names(self) -> list[str]:
        return [placement.slot for placement in self.placements]

    def placement(self, slot: str) -> Placement:
        for placement in self.placements:
            if placement.slot == slot:
                return placement
        raise KeyError(slot)

    def on_host(self, host: Host) -> Sequence[Placement]:
        return [placement for placement in self.placements if placement.host == host]
