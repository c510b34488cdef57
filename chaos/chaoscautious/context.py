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

Activities reach the cluster only through its backend (``cautious.backends``), never a
container or host directly. Only the standard library is imported at module level:
``chaos validate`` imports every activity module, and importing a backend's client, pydantic or
locust there would slow it down (and importing locust breaks ``ssl``).
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
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from cautious.backends import Backend, Instance, LbEndpoint
    from cautious.cluster.balancer import LoadBalancer
    from cautious.cluster.sandbox import Sandbox
    from cautious.config import Config

__all__ = [
    "CLUSTER_ENV",
    "CLUSTER_KEY",
    "CONFIG_ENV",
    "CONFIG_KEY",
    "OUT_ENV",
    "OUT_KEY",
    "ChaosError",
    "RunState",
    "Target",
    "acting",
    "deadline_loop",
    "default_out_dir",
    "log",
    "suppressed",
    "target",
]

CONFIG_KEY, CONFIG_ENV = "cautious_config", "CAUTIOUS_CONFIG"
CLUSTER_KEY, CLUSTER_ENV = "cautious_cluster", "CAUTIOUS_CLUSTER"
OUT_KEY, OUT_ENV = "cautious_out_dir", "CAUTIOUS_CHAOS_OUT"

log = logging.getLogger("chaostoolkit")
T = TypeVar("T")


class ChaosError(Exception):
    """An activity could not do what it was asked; chaoslib records a failed activity."""


@dataclass(frozen=True)
class Target:
    """The configuration and cluster an experiment acts on, through the cluster's backend."""

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

    # -- the cluster ---------------------------------------------------------------------------

    def sandbox(self) -> Sandbox:
        """The cluster as the product drives it (one backend client per process and cluster)."""
        key = (str(self.config_path), self.cluster)
        if key not in _sandboxes:
            from cautious.cluster.sandbox import Sandbox
            from cautious.exceptions import CautiousError

            try:
                _sandboxes[key] = Sandbox(self.config, say=_say)
            except CautiousError as exc:
                raise ChaosError(f"cautious: {exc}") from None
        return _sandboxes[key]

    @property
    def backend(self) -> Backend:
        return self.sandbox().backend

    def instances(self, *, running_only: bool = True) -> list[Instance]:
        """The cluster's instances in slot order (sample-1, sample-2 …)."""
        every = self.backend.instances()
        return [item for item in every if item.state == "running"] if running_only else every

    def instance(self, name: str) -> Instance:
        """One instance by slot name; ChaosError when the cluster has none there."""
        found = self.backend.instance(name)
        if found.state == "missing":
            raise ChaosError(f"cluster {self.cluster!r} has no instance {name!r}")
        return found

    def pick(self, selector: str) -> Instance:
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

    def runtime(self) -> LoadBalancer:
        """The client that steers the cluster's running load balancer."""
        from cautious.exceptions import CautiousError

        try:
            return self.sandbox().runtime()
        except CautiousError as exc:
            raise ChaosError(str(exc)) from None

    def frontend_url(self) -> str:
        """The load balancer's front door, as this machine reaches it."""
        return self.lb().url

    def lb(self) -> LbEndpoint:
        """The cluster's running load balancer, as this machine reaches it."""
        endpoint = self.backend.lb()
        if endpoint is None:
            raise ChaosError(
                f"cluster {self.cluster!r} has no load balancer; run `invoke sandbox.up`"
            )
        return endpoint


_sandboxes: dict[tuple[str, str], Sandbox] = {}


def _say(line: str) -> None:
    log.info("cautious: %s", line)


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


def acting(what: str, body: Callable[[], T]) -> T:
    """Run a call into the product; its error becomes the ChaosError chaoslib records."""
    from cautious.exceptions import CautiousError

    try:
        return body()
    except (CautiousError, ValueError) as exc:
        raise ChaosError(f"{what}: {exc}") from None


@contextlib.contextmanager
def suppressed(what: str) -> Iterator[None]:
    """Best-effort cleanup: log what failed and go on with the rest."""
    try:
        yield
    except Exception as exc:
        log.warning("cautious: %s failed: %s", what, exc)
