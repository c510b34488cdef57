"""The load-balancer seam: what rollouts ask of the LB, whichever one answers.

The runner, the careful moves in ``operations`` and the sandbox steer traffic only through
:class:`LoadBalancer`: set a server's admin state or weight, point it at an address, and read
per-server stats. HAProxy's runtime API implements it for real clusters
(``cluster.lb.HAProxyRuntime``); ``backends.fake.FakeLb`` implements it in memory for tests.
The waits are written once here, on top of ``stats``, so every implementation polls the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal, Protocol

from cautious.exceptions import SandboxError

__all__ = ["AdminState", "Condition", "LoadBalancer", "ServerStat"]

AdminState = Literal["ready", "drain", "maint"]
Condition = Literal["up", "down", "idle"]

_CHECKS: dict[Condition, Callable[[ServerStat], bool]] = {
    # a server just out of maint shows "UP 1/2" until its next check passes: not fully up yet
    "up": lambda stat: stat.status == "UP",
    "down": lambda stat: not stat.status.startswith("UP"),
    "idle": lambda stat: stat.current_sessions == 0,
}


@dataclass(frozen=True)
class ServerStat:
    """One server as the LB sees it right now (a row of HAProxy's ``show stat``)."""

    name: str
    status: str  # UP, DOWN, MAINT, DRAIN, "UP 1/2", "MAINT (resolution)", no check …
    weight: int
    current_sessions: int
    total_sessions: int
    responses_5xx: int
    check_status: str
    address: str

    @property
    def in_rotation(self) -> bool:
        """True when new requests may be sent to this server."""
        return self.status.startswith("UP") and self.weight > 0


class LoadBalancer(Protocol):
    """A load balancer with one backend of named servers (the cluster's slots).

    Implementations subclass it to inherit ``server`` and ``wait_until``; ``poll_s`` is how
    often those waits re-read the stats (an in-memory LB answers at once, so it polls fast).
    """

    poll_s: float

    def set_state(self, server: str, state: AdminState) -> None:
        """Drain (finish sessions, take no new ones), maint (out), or ready (back in)."""
        ...

    def set_weight(self, server: str, weight: int) -> None:
        """Relative share of new requests (0–256); canaries steer traffic with this."""
        ...

    def set_address(self, server: str, ip: str, port: int) -> None:
        """Point a server at a fresh instance's address without waiting for DNS."""
        ...

    def set_read_only(self, on: bool) -> None:
        """Read-only mode: the LB answers writes itself (503 + Retry-After), reads go on."""
        ...

    def stats(self) -> dict[str, ServerStat]:
        """Every server of the backend, by name."""
        ...

    def wait_answering(self, *, timeout_s: float) -> None:
        """Poll until the LB answers (it just started); SandboxError after the deadline."""
        ...

    def server(self, name: str) -> ServerStat:
        """One server's row, or a SandboxError when the slot does not exist."""
        try:
            return self.stats()[name]
        except KeyError:
            raise SandboxError(f"the load balancer has no server {name}") from None

    def wait_until(
        self,
        servers: Iterable[str],
        condition: Condition,
        *,
        timeout_s: float,
        poll_s: float | None = None,
    ) -> float:
        """Poll until every server meets ``condition``; return seconds waited.

        Conditions: ``up`` (fully UP), ``down`` (not UP at all), ``idle`` (no current sessions).
        """
        names = list(servers)
        check = _CHECKS[condition]
        started = time.monotonic()
        deadline = started + timeout_s
        while True:
            stats = self.stats()
            if all(name in stats and check(stats[name]) for name in names):
                return time.monotonic() - started
            if time.monotonic() >= deadline:
                states = ", ".join(
                    f"{n}={stats[n].status}/scur={stats[n].current_sessions}"
                    for n in names
                    if n in stats
                )
                raise SandboxError(
                    f"load balancer servers not {condition} after {timeout_s:g} s: {states}"
                )
            time.sleep(self.poll_s if poll_s is None else poll_s)
