"""chaostoolkit-cautious: the Chaos Toolkit extension of Cautious.

Actions (``chaoscautious.actions``) kill, stop, pause and restart instances, slow down or cut
off their network, restart the load balancer, run a rollout and Locust load in the background;
probes (``chaoscautious.probes``) measure availability against the claims, count healthy
instances, read the load balancer and the rollout journal; the control
(``chaoscautious.controls``) sets each experiment up and keeps chaoslib from passing a broken
one. Experiments live in ``chaos/experiments``; ``invoke chaos.run`` / ``invoke gameday`` run
them with a report. See docs/chaos.md.

Importing this package imports nothing heavy: ``chaos validate`` and ``chaos discover`` import it.
"""

from importlib.metadata import PackageNotFoundError, version
from typing import Any

__all__ = ["__version__", "discover"]

try:
    # The git tag, recorded in the installed metadata when the distribution was built.
    __version__ = version("chaostoolkit-cautious")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0.0.0"


def discover(discover_system: bool = True) -> dict[str, Any]:
    """What ``chaos discover chaostoolkit-cautious`` reports: the activities, and (with
    ``discover_system``) the configured cluster and what it runs."""
    from chaoslib.discovery.discover import (
        discover_actions,
        discover_probes,
        initialize_discovery_result,
    )

    discovery: dict[str, Any] = initialize_discovery_result(
        "chaostoolkit-cautious", __version__, "cautious"
    )
    discovery["activities"].extend(discover_actions("chaoscautious.actions"))
    discovery["activities"].extend(discover_probes("chaoscautious.probes"))
    if discover_system:
        discovery["system"] = _clusters()
    return discovery


def _clusters() -> dict[str, Any]:
    """The configured cluster (``./cautious.yaml`` or ``CAUTIOUS_CONFIG``), asked through its
    backend: its instances and their releases."""
    try:
        from chaoscautious.context import target

        tgt = target(None)
        instances = tgt.instances()
    except Exception as exc:  # discovery must work without a configuration or an engine
        return {"backend": f"unavailable: {exc}"}
    return {
        "backend": tgt.backend.name,
        "clusters": {tgt.cluster: {item.name: item.release for item in instances}},
    }
