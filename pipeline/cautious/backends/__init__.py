"""Where instances run. ``make_backend`` picks the implementation named in ``cluster.backend``."""

from __future__ import annotations

from collections.abc import Callable

from cautious.backends.base import Backend, Instance, InstanceSpec, InstanceState, LbEndpoint
from cautious.config import Config

__all__ = ["Backend", "Instance", "InstanceSpec", "InstanceState", "LbEndpoint", "make_backend"]


def make_backend(config: Config, say: Callable[[str], None] = print) -> Backend:
    """The backend for this cluster; imported lazily so unused engines need no client."""
    match config.cluster.backend:
        case "docker":
            from cautious.backends.docker import DockerBackend

            return DockerBackend(config.cluster.name, base_image=config.service.base_image, say=say)
