"""Where instances run. ``make_backend`` picks the implementation named in ``cluster.backend``."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from cautious.backends.base import (
    Backend,
    Instance,
    InstanceSpec,
    InstanceState,
    LbAddressing,
    LbEndpoint,
    LbRestart,
    NetworkFault,
    NetworkFaults,
    NetworkLeftovers,
    Pace,
    slot_names,
)
from cautious.backends.registry import BACKENDS

if TYPE_CHECKING:
    from cautious.config import Config

__all__ = [
    "BACKENDS",
    "Backend",
    "Instance",
    "InstanceSpec",
    "InstanceState",
    "LbAddressing",
    "LbEndpoint",
    "LbRestart",
    "NetworkFault",
    "NetworkFaults",
    "NetworkLeftovers",
    "Pace",
    "make_backend",
    "slot_names",
]


def make_backend(config: Config, say: Callable[[str], None] = print) -> Backend:
    """The backend for this cluster; imported lazily so unused engines need no client."""
    module_name, _, class_name = BACKENDS[config.cluster.backend].partition(":")
    factory: Callable[..., Backend] = getattr(importlib.import_module(module_name), class_name)
    return factory(config, say=say)
