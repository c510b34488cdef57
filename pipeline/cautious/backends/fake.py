"""An in-memory backend and load balancer, so rollouts can be tested in milliseconds.

Like httpx's ``MockTransport``, the fake ships with the product: the sandbox, the runner,
``recover`` and the journal's lock run on it unchanged, and a test scripts how each release
behaves (:class:`Behaviour`): how long its instances take to become ready, whether they exit
on start or never become ready, which share of requests they answer with 5xx or drop.

:class:`FakeLb` plays HAProxy: admin states, weights and addresses set through the
:class:`~cautious.cluster.balancer.LoadBalancer` protocol, a server status that follows the
instance's health at once (no ``rise`` delay), and per-server counters. With
``traffic_per_s`` it sends that many requests per second of wall time, split by weight among the
servers in rotation, every time its stats are read (at most 500 per read) — so a bake sees
traffic without a load generator; :meth:`FakeLb.request` sends one request by hand. Ratios are
applied with accumulators, not dice: a release with ``error_ratio=0.1`` answers exactly every
tenth request of a server with a 5xx, so gate tests are deterministic.

It is not registered as a ``cluster.backend``: a fake cluster lives only as long as its object.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from cautious.backends.base import (
    Instance,
    InstanceSpec,
    InstanceState,
    LbAddressing,
    LbEndpoint,
    LbRestart,
    Occupant,
    Pace,
    slot_names,
)
from cautious.backends.state import MemoryStore
from cautious.cluster.balancer import AdminState, LoadBalancer, ServerStat
from cautious.config import Config
from cautious.exceptions import HostUnreachable, SandboxError
from cautious.release import Release

__all__ = ["Answer", "Behaviour", "FakeBackend", "FakeLb"]

_KILLING_SIGNALS = {"SIGKILL": 137, "KILL": 137, "9": 137, "SIGTERM": 143, "TERM": 143, "15": 143}
# A read sends at most this many: on a busy machine, sending a long gap's worth would take
# longer than the gap itself, and the debt would grow with every read.
_MAX_REQUESTS_PER_READ = 500
_SILENT_HOST = "fake-host"  # the host named for a slot in ``silent``
_WHOLE = 1 - 1e-9  # ten times 0.1 is one request, whatever floating point says
_ENDPOINT = LbEndpoint(url="http://fake-lb.invalid", runtime_host="fake-lb.invalid", runtime_port=0)


@dataclass(frozen=True)
class Behaviour:
    """How the instances of one release behave.

    ``startup_s``: seconds from start to answering 200; a tuple scripts successive starts
    (cycled), for a start-up time distribution. ``exit_after_s``: the process exits with
    ``exit_code`` that long after starting (0: it crashes on start). ``ready=False``: it runs
    but never answers 200. ``error_ratio`` / ``drop_ratio``: the share of its requests answered
    with a 5xx / whose connection is dropped (status 0, not counted as a 5xx by the LB).
    """

    startup_s: float | tuple[float, ...] = 0.0
    exit_after_s: float | None = None
    exit_code: int = 1
    ready: bool = True
    error_ratio: float = 0.0
    drop_ratio: float = 0.0

    def startup_of(self, start_number: int) -> float:
        if isinstance(self.startup_s, tuple):
            return self.startup_s[start_number % len(self.startup_s)]
        return self.startup_s


@dataclass(frozen=True)
class Answer:
    """What a client got from one request through the fake LB (status 0: connection dropped)."""

    status: int
    instance: str | None
    release: str | None


@dataclass
class _Copy:
    """One instance in a slot: a release started at a moment, and what happened to it since."""

    slot: str
    release: Release
    port: int
    behaviour: Behaviour
    started: float
    startup_s: float
    exited: int | None = None  # the exit code once stopped or killed
    paused: bool = False
    log: list[str] = field(default_factory=list)
    image: str = ""  # what really runs, when someone replaced it outside Cautious

    def exit_code(self, now: float) -> int | None:
        if self.exited is not None:
            return self.exited
        crash = self.behaviour.exit_after_s
        if crash is not None and now >= self.started + crash:
            return self.behaviour.exit_code
        return None

    def state(self, now: float) -> InstanceState:
        if self.exit_code(now) is not None:
            return "exited"
        return "paused" if self.paused else "running"

    def health(self, now: float) -> int:
        """The status its health endpoint answers now (0: nothing answers)."""
        if self.state(now) != "running":
            return 0
        if not self.behaviour.ready or now < self.started + self.startup_s:
            return 503
        return 200


class FakeBackend:
    """A cluster that exists only in this object: instances are records, time is real."""

    name = "fake"
    pace = Pace(ready_poll_s=0.002, bake_poll_s=0.005)

    def __init__(
        self,
        config: Config,
        *,
        say: Callable[[str], None] = print,
        behaviours: Mapping[str, Behaviour] | None = None,
        traffic_per_s: float = 0.0,
    ) -> None:
        self.config = config
        self.say = say
        self.behaviours = dict(behaviours or {})
        self.traffic_per_s = traffic_per_s
        self.builds: list[Release] = []  # every build, in order
        self.fake_lb: FakeLb | None = None
        self._copies: dict[str, _Copy] = {}
        self._starts: dict[str, int] = {}  # per release label, for scripted start-up times
        self._lock = threading.RLock()
        self._state = MemoryStore()  # the cluster's lock and journal live as long as it does
        self.strangers: list[Occupant] = []  # started by hand on the cluster's network
        self.silent: set[str] = set()  # slots whose host does not answer (sshd killed)

    # -- releases ----------------------------------------------------------------------------

    def find_release(self, label: str) -> Release | None:
        return next((item for item in reversed(self.builds) if item.label == label), None)

    def build_release(self, label: str, env: Mapping[str, str], git_sha: str | None) -> Release:
        """The same label and environment give the same digest, as a build cache would."""
        content = f"{label}\n{sorted(env.items())}".encode()
        digest = "sha256:" + hashlib.sha256(content).hexdigest()
        release = Release(label, f"fake/{self.config.service.name}:{label}", digest, git_sha)
        self.builds.append(release)
        return release

    def release_by_digest(self, label: str, digest: str) -> Release:
        if not any(item.digest == digest for item in self.builds):
            raise SandboxError(f"the build of release {label} ({digest[:19]}) is gone")
        return Release(label=label, image=digest, digest=digest)

    # -- instances ---------------------------------------------------------------------------

    def slots(self) -> list[str]:
        return slot_names(self.config.service.name)

    def start(self, spec: InstanceSpec) -> Instance:
        behaviour = self.behaviours.get(spec.release.label, Behaviour())
        self._answer(spec.slot)
        with self._lock:
            number = self._starts.get(spec.release.label, 0)
            self._starts[spec.release.label] = number + 1
            copy = _Copy(
                slot=spec.slot,
                release=spec.release,
                port=spec.port,
                behaviour=behaviour,
                started=time.monotonic(),
                startup_s=behaviour.startup_of(number),
            )
            copy.log.append(f"{spec.slot}: starting {spec.release.label}")
            if behaviour.exit_after_s is not None:
                copy.log.append(f"{spec.slot}: fatal error, exiting with {behaviour.exit_code}")
            self._copies[spec.slot] = copy
        return self.instance(spec.slot)

    def stop(self, name: str, grace_s: float, *, remove: bool = True) -> None:
        self._answer(name)
        with self._lock:
            copy = self._copies.get(name)
            if copy is None:
                return
            if copy.exit_code(time.monotonic()) is None:
                copy.exited = 0
                copy.log.append(f"{name}: stopped")
            if remove:
                del self._copies[name]

    def instance(self, name: str) -> Instance:
        with self._lock:
            copy = self._copies.get(name)
            if name in self.silent:
                return Instance(name, "", "", "unreachable", None, None, host=_SILENT_HOST)
            if copy is None:
                return Instance(name, "", "", "missing", None, None)
            now = time.monotonic()
            return Instance(
                name=name,
                release=copy.release.label,
                digest=copy.release.digest,
                state=copy.state(now),
                lb_address=(_address_of(name), copy.port),
                local_url=None,  # nothing listens: probes go through ``probe``
                exit_code=copy.exit_code(now),
            )

    def instances(self) -> list[Instance]:
        with self._lock:
            listed = set(self._copies) | self.silent
            return [self.instance(slot) for slot in self.slots() if slot in listed]

    def _answer(self, slot: str) -> None:
        if slot in self.silent:
            raise HostUnreachable(f"host {_SILENT_HOST} does not answer SSH: connection refused")

    def probe(self, name: str, path: str, *, timeout_s: float) -> int:
        with self._lock:
            copy = self._copies.get(name)
            return copy.health(time.monotonic()) if copy else 0

    def logs(self, name: str, tail: int = 50) -> str:
        with self._lock:
            copy = self._copies.get(name)
            return "\n".join(copy.log[-tail:]) if copy else ""

    def behaviour_of(self, name: str) -> Behaviour | None:
        """The script of the instance in slot ``name`` (for the fake LB's answers)."""
        with self._lock:
            copy = self._copies.get(name)
            return copy.behaviour if copy else None

    # -- faults ------------------------------------------------------------------------------

    def kill(self, name: str, signal: str) -> InstanceState:
        with self._lock:
            copy = self._running_copy(name)
            if signal in _KILLING_SIGNALS:
                copy.exited = _KILLING_SIGNALS[signal]
                copy.log.append(f"{name}: killed by {signal}")
            return copy.state(time.monotonic())

    def restart(self, name: str, grace_s: float) -> None:
        with self._lock:
            copy = self._running_copy(name)
            copy.exited, copy.paused, copy.started = None, False, time.monotonic()
            copy.log.append(f"{name}: restarted")

    def pause(self, name: str) -> None:
        with self._lock:
            self._running_copy(name).paused = True

    def unpause(self, name: str) -> None:
        with self._lock:
            self._running_copy(name).paused = False

    def _running_copy(self, name: str) -> _Copy:
        copy = self._copies.get(name)
        if copy is None:
            raise SandboxError(f"the fake cluster has no instance {name!r}")
        return copy

    # -- the load balancer -------------------------------------------------------------------

    def lb_addressing(self) -> LbAddressing:
        port = self.config.service.port
        return LbAddressing(servers=tuple((slot, f"{slot}:{port}") for slot in self.slots()))

    def ensure_lb(self, config_text: str) -> LbEndpoint:
        if self.fake_lb is None or self.fake_lb.config_text != config_text:
            self.fake_lb = FakeLb(self, config_text, traffic_per_s=self.traffic_per_s)
        return _ENDPOINT

    def lb(self) -> LbEndpoint | None:
        return _ENDPOINT if self.fake_lb is not None else None

    def lb_runtime(self) -> FakeLb | None:
        return self.fake_lb

    def restart_lb(self, grace_s: float) -> LbRestart:
        if self.fake_lb is None:
            raise SandboxError("the fake cluster has no load balancer to restart")
        self.fake_lb.forget_runtime_state()
        return LbRestart(stopped_s=0.0, down_s=0.0, same_address=True)

    def state_store(self) -> MemoryStore:
        return self._state

    # -- what an audit sees, and the changes it must catch -------------------------------------

    def occupants(self) -> list[Occupant]:
        with self._lock:
            found = [
                Occupant(slot, copy.image or copy.release.digest, "instance", slot)
                for slot, copy in self._copies.items()
            ]
        lb = [Occupant("lb", "fake-haproxy", "lb")] if self.fake_lb is not None else []
        return found + lb + self.strangers

    def start_by_hand(self, name: str, image: str) -> None:
        """What someone does with ``docker run`` on the cluster's network."""
        self.strangers.append(Occupant(name, image))

    def replace_image(self, slot: str, image: str) -> None:
        """What someone does who swaps an instance's image and keeps its name and labels."""
        with self._lock:
            self._copies[slot].image = image

    # -- teardown ----------------------------------------------------------------------------

    def teardown(self) -> list[str]:
        with self._lock:
            removed = [f"instance {slot}" for slot in self._copies]
            self._copies.clear()
        if self.fake_lb is not None:
            self.fake_lb = None
            removed.append("load balancer")
        return removed


@dataclass
class _Server:
    """One server slot of the fake LB: what the runtime API set, what it counted."""

    name: str
    admin: AdminState = "ready"
    weight: int = 1
    address: str = ""
    total: int = 0
    errors: int = 0
    drops: int = 0
    current_sessions: int = 0
    error_credit: float = 0.0
    drop_credit: float = 0.0
    pick_credit: float = 0.0  # smooth weighted round-robin


class FakeLb(LoadBalancer):
    """HAProxy's runtime API in memory, over the instances of a :class:`FakeBackend`."""

    poll_s = 0.002

    def __init__(
        self, backend: FakeBackend, config_text: str = "", *, traffic_per_s: float = 0.0
    ) -> None:
        self.backend = backend
        self.config_text = config_text
        self.traffic_per_s = traffic_per_s
        self.answers: list[Answer] = []  # every request sent, in order
        self._servers = {slot: _Server(slot) for slot in backend.slots()}
        self._lock = threading.RLock()
        self._last_tick = time.monotonic()
        self._owed = 0.0
        self.read_only = False  # read-only mode's switch (no simulated request is a write)

    # -- the LoadBalancer protocol -----------------------------------------------------------

    def set_state(self, server: str, state: AdminState) -> None:
        with self._lock:
            self._server(server).admin = state

    def set_weight(self, server: str, weight: int) -> None:
        if not 0 <= weight <= 256:
            raise ValueError(f"HAProxy weights go from 0 to 256, not {weight}")
        with self._lock:
            self._server(server).weight = weight

    def set_address(self, server: str, ip: str, port: int) -> None:
        with self._lock:
            self._server(server).address = f"{ip}:{port}"

    def set_read_only(self, on: bool) -> None:
        with self._lock:
            self.read_only = on

    def stats(self) -> dict[str, ServerStat]:
        with self._lock:
            self._send_owed_traffic()
            return {name: self._stat(server) for name, server in self._servers.items()}

    def wait_answering(self, *, timeout_s: float) -> None:
        return None  # in memory: it always answers

    # -- traffic -----------------------------------------------------------------------------

    def request(self) -> Answer:
        """One client request: to a server in rotation by weight, answered as its release does."""
        with self._lock:
            return self._send(1)[0]

    def set_in_flight(self, server: str, sessions: int) -> None:
        """Script requests that never finish on ``server`` (a drain that runs out of time)."""
        with self._lock:
            self._server(server).current_sessions = sessions

    def forget_runtime_state(self) -> None:
        """What an HAProxy restart does: flags, weights and addresses back to the config's."""
        with self._lock:
            for server in self._servers.values():
                server.admin, server.weight, server.address = "ready", 1, ""
            self.read_only = False

    # -- helpers -----------------------------------------------------------------------------

    def _server(self, name: str) -> _Server:
        try:
            return self._servers[name]
        except KeyError:
            raise SandboxError(f"the fake load balancer has no server {name}") from None

    def _status(self, server: _Server) -> str:
        if server.admin == "maint":
            return "MAINT"
        instance = self.backend.instance(server.name)
        if instance.state == "missing":
            return "MAINT (resolution)"
        health = self.backend.probe(server.name, "", timeout_s=0)
        if health != 200:
            return "DOWN"
        return "DRAIN" if server.admin == "drain" else "UP"

    def _stat(self, server: _Server) -> ServerStat:
        status = self._status(server)
        return ServerStat(
            name=server.name,
            status=status,
            weight=server.weight,
            current_sessions=server.current_sessions,
            total_sessions=server.total,
            responses_5xx=server.errors,
            check_status="L7OK" if status in {"UP", "DRAIN"} else "L7STS",
            address=server.address,
        )

    def _send(self, count: int) -> list[Answer]:
        """``count`` requests, spread over the servers in rotation now (weight > 0 and UP)."""
        candidates = [
            server
            for server in self._servers.values()
            if server.weight > 0 and self._status(server) == "UP"
        ]
        scripts = {server.name: self._script(server.name) for server in candidates}
        answers = [
            self._send_to(_pick(candidates), scripts) if candidates else Answer(503, None, None)
            for _ in range(count)
        ]
        self.answers.extend(answers)
        return answers

    def _script(self, name: str) -> tuple[Behaviour, str] | None:
        behaviour = self.backend.behaviour_of(name)
        return (behaviour, self.backend.instance(name).release) if behaviour else None

    def _send_to(
        self, server: _Server, scripts: Mapping[str, tuple[Behaviour, str] | None]
    ) -> Answer:
        server.total += 1
        script = scripts[server.name]
        if script is None:
            return Answer(503, server.name, None)
        behaviour, release = script
        server.drop_credit += behaviour.drop_ratio
        if server.drop_credit >= _WHOLE:
            server.drop_credit -= 1
            server.drops += 1
            return Answer(0, server.name, release)
        server.error_credit += behaviour.error_ratio
        if server.error_credit >= _WHOLE:
            server.error_credit -= 1
            server.errors += 1
            return Answer(500, server.name, release)
        return Answer(200, server.name, release)

    def _send_owed_traffic(self) -> None:
        now = time.monotonic()
        self._owed += (now - self._last_tick) * self.traffic_per_s
        self._last_tick = now
        count = min(int(self._owed), _MAX_REQUESTS_PER_READ)
        self._owed = 0.0 if count == _MAX_REQUESTS_PER_READ else self._owed - count
        if count:
            self._send(count)


def _pick(candidates: Sequence[_Server]) -> _Server:
    """Smooth weighted round-robin: shares follow the weights exactly, with no dice."""
    total = sum(server.weight for server in candidates)
    for server in candidates:
        server.pick_credit += server.weight
    chosen = max(candidates, key=lambda server: server.pick_credit)
    chosen.pick_credit -= total
    return chosen


def _address_of(slot: str) -> str:
    """A made-up address per slot (10.0.0.N), like a container IP on the cluster network."""
    _, _, number = slot.rpartition("-")
    return f"10.0.0.{number}" if number.isdigit() else "10.0.0.254"
