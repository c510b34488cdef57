"""After each experiment: is the cluster as the experiment found it? If not, restore it.

Two witnesses, neither of them the experiment's own word:

- the experiment's control (``chaoscautious.controls``) checks for faults left behind — it
  knows what faults are — clears them, and records that as ``cleanup`` in ``chaos-run.json``;
  a missing record means the chaos process died before its control ran;
- the core checks that every instance is running, ready and UP at the load balancer.

Anything wrong fails the experiment, and the cluster is restored the way a deploy converges it
(the experiment's baseline release on every slot, journaled) before the next one starts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cautious.cluster.sandbox import Sandbox
from cautious.deploy import DeployPipeline
from cautious.exceptions import CautiousError

__all__ = ["ClusterHealth", "check_cluster", "cluster_health"]

_SETTLE_S = 30.0
_POLL_S = 0.5


@dataclass(frozen=True)
class ClusterHealth:
    """How many instances are healthy — running, ready and UP at the load balancer — against
    the configured count, and which releases the running ones run."""

    expected: int
    healthy: int
    present: int
    releases: Mapping[str, int]

    @property
    def unhealthy(self) -> int:
        """Short of the configured count, plus any instance beyond it (dead or extra)."""
        return max(0, self.expected - self.healthy) + max(0, self.present - self.expected)


def cluster_health(sandbox: Sandbox) -> ClusterHealth:
    """The cluster now, as the backend and the load balancer see it."""
    instances = sandbox.status().instances
    running = [item for item in instances if item.state == "running"]
    releases: dict[str, int] = {}
    for item in running:
        releases[item.release] = releases.get(item.release, 0) + 1
    healthy = [item for item in running if item.health == "ready" and item.lb_state == "UP"]
    return ClusterHealth(sandbox.config.cluster.instances, len(healthy), len(instances), releases)


def check_cluster(
    sandbox: Sandbox,
    run_state: Mapping[str, Any] | None,
    say: Callable[[str], None],
    *,
    settle_s: float = _SETTLE_S,
) -> dict[str, Any]:
    """The cluster after an experiment: ``healthy`` ("3/3"), ``releases``, ``leftovers``, and
    ``problem`` (with ``restored``: what the restore did) when something was wrong.

    ``settle_s`` bounds the wait for the cluster to settle (an LB check cycle, a last restart).
    """
    record = (run_state or {}).get("cleanup")
    problems = _leftover_problems(record)
    try:
        health = _wait_healthy(sandbox, settle_s)
    except CautiousError as exc:
        return {"healthy": None, "leftovers": None, "problem": f"cannot check the cluster: {exc}"}
    result: dict[str, Any] = {
        "healthy": f"{health.healthy}/{health.expected}",
        "releases": dict(health.releases),
        "leftovers": (record or {}).get("leftovers"),
    }
    if health.unhealthy:
        problems.append(f"{health.healthy}/{health.expected} instances healthy")
    if problems:
        result["problem"] = "after the experiment: " + "; ".join(problems)
        say(f"restoring the cluster: {result['problem']}")
        result["restored"] = _restore(sandbox, (run_state or {}).get("baseline_release"), say)
    return result


def _wait_healthy(sandbox: Sandbox, timeout_s: float) -> ClusterHealth:
    deadline = time.monotonic() + timeout_s
    while True:
        health = cluster_health(sandbox)
        if health.unhealthy == 0 or time.monotonic() >= deadline:
            return health
        time.sleep(_POLL_S)


def _restore(sandbox: Sandbox, release: str | None, say: Callable[[str], None]) -> str:
    """Converge on ``release`` as a deploy would; what it did, in one line."""
    try:
        if sandbox.backend.lb() is None:
            sandbox.ensure_lb()
        pipeline = DeployPipeline(sandbox.config, say=say, sandbox=sandbox)
        done = pipeline.converge(release, kind="gameday-restore")
    except CautiousError as exc:
        return f"failed: {exc}"
    moved = [*done.rolled, *done.started]
    return f"on {done.release}" + (f" ({', '.join(moved)} changed)" if moved else "")


def _leftover_problems(record: Mapping[str, Any] | None) -> list[str]:
    if record is None:
        return [
            "the experiment's control left no cleanup record (no chaos-run.json, or no "
            "chaoscautious control in the experiment): faults it injected may remain"
        ]
    if record.get("error"):
        return [str(record["error"])]
    if record.get("leftovers"):
        return [f"faults left behind: {record.get('left')} (cleared: {record.get('cleared')})"]
    return []
