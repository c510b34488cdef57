"""After each experiment: is the cluster as the experiment found it? If not, restore it.

Two witnesses, neither of them the experiment's own word:

- the experiment's control (``chaoscautious.controls``) checks for faults left behind — it
  knows what faults are — clears them, and records that as ``cleanup`` in ``chaos-run.json``;
  a missing record means the chaos process died before its control ran;
- the core checks that every instance is running, ready and UP at the load balancer.

Anything wrong fails the experiment, and the cluster is restored (the experiment's baseline
release on every slot) before the next one starts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from cautious.cluster.sandbox import Sandbox
from cautious.exceptions import CautiousError
from cautious.restore import restore_cluster, wait_healthy
from cautious.rollout.journal import Journal

__all__ = ["check_cluster"]

_SETTLE_S = 30.0


def check_cluster(
    sandbox: Sandbox, run_state: Mapping[str, Any] | None, say: Callable[[str], None]
) -> dict[str, Any]:
    """The cluster after an experiment: ``healthy`` ("3/3"), ``releases``, ``leftovers``, and
    ``problem`` (with ``restored``: what the restore did) when something was wrong."""
    record = (run_state or {}).get("cleanup")
    problems = _leftover_problems(record)
    try:
        health = wait_healthy(sandbox, _SETTLE_S)
    except CautiousError as exc:
        return {"healthy": None, "leftovers": None, "problem": f"cannot check the cluster: {exc}"}
    result: dict[str, Any] = {
        "healthy": f"{health.healthy}/{health.expected}",
        "releases": dict(health.releases),
        "leftovers": (record or {}).get("leftovers"),
    }
    if health.unhealthy:
        problems.append(f"{health.healthy}/{health.expected} instances healthy")
    if not problems:
        return result
    result["problem"] = "after the experiment: " + "; ".join(problems)
    say(f"restoring the cluster: {result['problem']}")
    config = sandbox.config
    journal = Journal(config.path(config.state_dir), config.cluster.name)
    try:
        release = (run_state or {}).get("baseline_release")
        result["restored"] = restore_cluster(sandbox, journal, release, say=say)
    except CautiousError as exc:
        result["restored"] = f"failed: {exc}"
    return result


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
