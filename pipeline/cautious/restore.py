"""Bring a cluster back to one known release: every slot running it, in rotation, healthy.

The game day does this between experiments, and a chaos experiment's rollbacks build on it.
It uses the product's own careful moves, so a restore costs no availability of its own and
``invoke history`` shows it: under the cluster's rollout lock, recover a rollout whose
orchestrator died, roll instances on another release over with a journaled rolling rollout,
and fill empty slots with ``Sandbox.up``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from cautious.cluster.sandbox import InstanceStatus, Sandbox
from cautious.exceptions import SandboxError
from cautious.rollout.journal import Journal
from cautious.rollout.runner import Runner, recover
from cautious.rollout.strategies import make_plan

__all__ = ["ClusterHealth", "cluster_health", "restore_cluster", "wait_healthy"]

_POLL_S = 0.5


@dataclass(frozen=True)
class ClusterHealth:
    """How many instances are healthy — running, ready and UP at the load balancer — against
    the configured count, and which releases the running ones run."""

    expected: int
    healthy: int
    releases: Mapping[str, int]
    instances: tuple[InstanceStatus, ...]

    @property
    def unhealthy(self) -> int:
        """Short of the configured count, plus any instance beyond it (dead or extra)."""
        return max(0, self.expected - self.healthy) + max(0, len(self.instances) - self.expected)


def cluster_health(sandbox: Sandbox) -> ClusterHealth:
    """The cluster now, as the backend and the load balancer see it."""
    instances = tuple(sandbox.status().instances)
    releases: dict[str, int] = {}
    for item in instances:
        if item.state == "running":
            releases[item.release] = releases.get(item.release, 0) + 1
    healthy = sum(
        1
        for item in instances
        if item.state == "running" and item.health == "ready" and item.lb_state == "UP"
    )
    return ClusterHealth(sandbox.config.cluster.instances, healthy, releases, instances)


def wait_healthy(sandbox: Sandbox, timeout_s: float) -> ClusterHealth:
    """Poll :func:`cluster_health` until every instance is healthy or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while True:
        health = cluster_health(sandbox)
        if health.unhealthy == 0 or time.monotonic() >= deadline:
            return health
        time.sleep(_POLL_S)


def restore_cluster(
    sandbox: Sandbox,
    journal: Journal,
    release: str | None = None,
    *,
    kind: str = "restore",
    say: Callable[[str], None] = print,
) -> list[str]:
    """Make every slot run ``release`` (default: the one release running now, else the last
    good one, else the first declared), in rotation; return what it did.

    The rollout it may need is journaled as ``kind``. Raises SandboxError when that rollout
    does not succeed, LockHeld when another rollout holds the cluster.
    """
    config = sandbox.config
    done: list[str] = []
    if sandbox.backend.lb() is None:
        sandbox.ensure_lb()
        done.append("started the load balancer")
    with journal.lock():
        if recover(sandbox, journal, say=say):
            done.append("recovered an interrupted rollout")
        running = [item for item in sandbox.backend.instances() if item.state == "running"]
        labels = {item.release for item in running}
        label = release or (labels.pop() if len(labels) == 1 else journal.last_good_release())
        label = label or next(iter(config.releases))
        wanted = sandbox.release(label)
        wrong = [item for item in running if item.digest != wanted.digest]
        if wrong:
            source = sandbox.release_by_digest(wrong[0].release, wrong[0].digest)
            taken = {item.name for item in sandbox.backend.instances()}
            free = [slot for slot in sandbox.backend.slots() if slot not in taken]
            plan = make_plan("rolling", [item.name for item in wrong], free, config.rollout)
            result = Runner(sandbox, journal, say=say).run(plan, source, wanted, kind=kind)
            if not result.succeeded:
                raise SandboxError(f"restoring {label} {result.outcome}: {result.reason}")
            done.append(f"rolled {', '.join(item.name for item in wrong)} over to {label}")
        before = {item.name for item in sandbox.backend.instances() if item.state == "running"}
        sandbox.up(config.cluster.instances, label)
        after = {item.name for item in sandbox.backend.instances() if item.state == "running"}
        if after != before:
            done.append(f"sandbox.up: {', '.join(sorted(after ^ before))}")
    return done
