"""The ``docker`` backend: the sandbox as labelled containers on one engine (see ``backend``)."""

from cautious.backends.docker.backend import DockerBackend, connect

__all__ = ["DockerBackend", "connect"]
