"""The backend interface: where instances (and the cluster's load balancer) run.

A backend owns everything that depends on *where*: making a release runnable there (building,
finding), naming the slots instances run in and how the load balancer reaches them, starting,
stopping and probing instances, their logs, running the load balancer, the faults chaos
experiments inject into an instance, and removing everything it created. Callers — the sandbox,
the rollout runner, the chaos extension — speak only this interface, so a ``docker`` sandbox,
``ssh`` hosts or the in-memory ``fake`` of the tests are swapped without changing them, the way
httpx swaps transports.

A new backend is one module with a class that satisfies :class:`Backend` and takes
``(config, *, say)``, plus one entry in ``cautious.backends.registry.BACKENDS``. Network faults
(latency, loss, cuts) are optional: a backend that can make them also satisfies
:class:`NetworkFaults`, and chaos experiments that need them say so when it does not.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from cautious.cluster.balancer import LoadBalancer
from cautious.release import Release

__all__ = [
    "MAX_SLOTS",
    "Auditable",
    "Backend",
    "HasStateStore",
    "Instance",
    "InstanceSpec",
    "InstanceState",
    "LbAddressing",
    "LbEndpoint",
    "LbRestart",
    "NetworkFault",
    "NetworkFaults",
    "NetworkLeftovers",
    "Occupant",
    "Pace",
    "StateStore",
    "slot_names",
]

# "unreachable": the machine it runs on does not answer (ssh), so its release is unknown.
InstanceState = Literal["running", "starting", "paused", "exited", "missing", "unreachable"]
MAX_SLOTS = 32  # twice the largest cluster, so blue-green always finds a free set


def slot_names(service: str, count: int = MAX_SLOTS) -> list[str]:
    """The usual slot names, ``sample-1`` …: instance names and LB server names at once."""
    return [f"{service}-{index}" for index in range(1, count + 1)]


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
    local_url: str | None  # where this machine reaches it directly, if it can
    exit_code: int | None = None
    restarts: int = 0  # restarts by the engine itself (a watchdog), not by Cautious
    host: str = ""  # the machine it runs on, where that is not this one (ssh)
    release_dir: str = ""  # the release's directory on that machine (what ``current`` names)


@dataclass(frozen=True)
class LbEndpoint:
    """The load balancer as this machine reaches it."""

    url: str  # http://127.0.0.1:PORT — the cluster's front door
    runtime_host: str
    runtime_port: int


@dataclass(frozen=True)
class LbAddressing:
    """How HAProxy reaches the slots: the lines of haproxy.cfg that depend on the backend.

    ``sections``: whole sections before ``defaults`` (e.g. a ``resolvers`` section);
    ``default_server``: options every server gets; ``servers``: (slot, address) per slot.
    """

    servers: tuple[tuple[str, str], ...]
    sections: str = ""
    default_server: str = ""


@dataclass(frozen=True)
class LbRestart:
    """What restarting the load balancer cost: until it stopped, until it answered again."""

    stopped_s: float
    down_s: float
    same_address: bool  # False when clients lost it (it came back elsewhere)


@dataclass(frozen=True)
class Pace:
    """How often waits re-ask the backend: an in-memory fake answers at once, so it polls fast."""

    ready_poll_s: float = 0.1  # readiness probes of a starting instance
    bake_poll_s: float = 0.25  # watching instances during a bake


@runtime_checkable
class Backend(Protocol):
    """What every backend provides; all calls are bounded in time."""

    name: str
    pace: Pace

    # -- releases: what the backend can run ----------------------------------------------------

    def find_release(self, label: str) -> Release | None:
        """The release already built (or shipped) under ``label``, if any."""
        ...

    def build_release(self, label: str, env: Mapping[str, str], git_sha: str | None) -> Release:
        """Build the service with ``env`` baked in, runnable here as release ``label``."""
        ...

    def release_by_digest(self, label: str, digest: str) -> Release:
        """Exactly the build a journal names; SandboxError when it is gone."""
        ...

    # -- instances ---------------------------------------------------------------------------

    def slots(self) -> list[str]:
        """Every slot an instance may run in, in rollout order (also the LB's server names)."""
        ...

    def start(self, spec: InstanceSpec) -> Instance:
        """Start a new instance in ``spec.slot``, replacing whatever stopped copy is there."""
        ...

    def stop(self, name: str, grace_s: float, *, remove: bool = True) -> None:
        """SIGTERM, wait up to ``grace_s`` for a graceful exit, then kill (and remove it)."""
        ...

    def instance(self, name: str) -> Instance:
        """The instance's current state (``missing`` when there is none)."""
        ...

    def instances(self) -> list[Instance]:
        """Every instance of this cluster, in slot order."""
        ...

    def probe(self, name: str, path: str, *, timeout_s: float) -> int:
        """HTTP status of one GET of ``path`` on the instance directly (0: nothing answered)."""
        ...

    def logs(self, name: str, tail: int = 50) -> str:
        """The instance's last output lines, for error messages and reports."""
        ...

    # -- faults, for chaos experiments -------------------------------------------------------

    def kill(self, name: str, signal: str) -> InstanceState:
        """Send ``signal`` to the instance's process; its state once a SIGKILL took effect."""
        ...

    def restart(self, name: str, grace_s: float) -> None:
        """Restart the instance's process in place, on the same release."""
        ...

    def pause(self, name: str) -> None:
        """Freeze the instance: connections hang, nothing is refused."""
        ...

    def unpause(self, name: str) -> None:
        """Thaw a paused instance."""
        ...

    # -- the load balancer -------------------------------------------------------------------

    def lb_addressing(self) -> LbAddressing:
        """How the load balancer reaches each slot (its part of the HAProxy configuration)."""
        ...

    def ensure_lb(self, config_text: str) -> LbEndpoint:
        """Run the load balancer with this configuration (recreated only when it changed)."""
        ...

    def lb(self) -> LbEndpoint | None:
        """The running load balancer, if any."""
        ...

    def lb_runtime(self) -> LoadBalancer | None:
        """A client that steers the running load balancer, if any."""
        ...

    def restart_lb(self, grace_s: float) -> LbRestart:
        """Restart the load balancer as a real LB restart happens: same address, fresh process."""
        ...

    # -- teardown ----------------------------------------------------------------------------

    def teardown(self) -> list[str]:
        """Remove everything this backend created for the cluster; return what was removed."""
        ...


@dataclass(frozen=True)
class NetworkFault:
    """What a network fault changed on an instance, so it can be recorded and undone."""

    spec: str  # e.g. "delay 300ms loss 10%"
    mechanism: str  # how the backend made it, e.g. netem, proxy, network disconnect
    helper: str | None = None  # a helper the backend started for it, if any


@dataclass(frozen=True)
class NetworkLeftovers:
    """What network faults left on the running instances, seen on the cluster itself."""

    helpers: tuple[str, ...] = ()
    qdiscs: Mapping[str, str] = field(default_factory=dict)  # instance → its qdisc lines
    lb_redirects: Mapping[str, str] = field(default_factory=dict)  # instance → LB address
    disconnected: tuple[str, ...] = ()


@runtime_checkable
class NetworkFaults(Protocol):
    """Network faults on one instance, for chaos experiments: a backend offers them if it can."""

    def add_network_fault(
        self, name: str, *, delay_ms: float, jitter_ms: float, loss_percent: float, mechanism: str
    ) -> NetworkFault:
        """Delay and/or lose the instance's traffic (``mechanism``: auto or one the backend
        names); ValueError for a mechanism it does not have."""
        ...

    def cut_off(self, name: str) -> NetworkFault:
        """Take the instance off the cluster network: nothing reaches it, it stays running."""
        ...

    def reconnect(self, name: str) -> bool:
        """Put a cut-off instance back on the network; False when it was not cut off."""
        ...

    def clear_network_faults(self, name: str | None = None) -> list[str]:
        """Undo latency and loss on one instance (``None``: all); what was undone."""
        ...

    def network_leftovers(self) -> NetworkLeftovers:
        """What faults left behind on the running instances."""
        ...


@runtime_checkable
class StateStore(Protocol):
    """Small text files kept where the cluster is: the rollout lock and the journal.

    Every checkout, CI workspace or machine that reaches the cluster reaches the same files, so
    all of them see one lock and one history. ``create`` is atomic (exactly one of two
    concurrent callers gets True): the lock is built on it.
    """

    where: str  # for messages: e.g. "Docker volume cautious-sandbox-state"

    def read(self, name: str, max_bytes: int) -> str:
        """The file's text ("" when there is none); ConfigError when it exceeds ``max_bytes``."""
        ...

    def append(self, name: str, text: str) -> None:
        """Add ``text`` at the end, durably (it must survive a SIGKILL that follows)."""
        ...

    def create(self, name: str, text: str) -> bool:
        """Write a new file; False (and nothing written) when it exists."""
        ...

    def replace(self, name: str, text: str) -> None:
        """Write the whole file at once (readers see the old or the new text, never a mix)."""
        ...

    def remove(self, name: str) -> None:
        """Remove the file; nothing when there is none."""
        ...


@runtime_checkable
class HasStateStore(Protocol):
    """A backend that keeps the cluster's state with the cluster (every bundled one does)."""

    def state_store(self) -> StateStore:
        """The store of this cluster's lock and journal."""
        ...


@dataclass(frozen=True)
class Occupant:
    """Something running on the cluster's network or ports, as the engine itself sees it.

    ``image`` is what it actually runs (not what its labels claim); ``role`` what Cautious
    started it as (instance, lb, state, …), "" when Cautious did not start it; ``slot`` the
    instance slot it serves, "" when it is not an instance.
    """

    name: str
    image: str
    role: str = ""
    slot: str = ""


@runtime_checkable
class Auditable(Protocol):
    """A backend that lists everything on its cluster's network, for ``cautious audit``."""

    def occupants(self) -> list[Occupant]:
        """Every container or process on the cluster's network or ports, Cautious's or not."""
        ...
