"""Backing services and one-off commands: what a stateful service needs of a backend.

A stateful service declares ``dependencies`` (a database, a cache): each is started once per
cluster, on the cluster's network under its own name, before the instances, and kept across
rollouts (its data is the point). Hooks of a three-legged plan (a schema migration, a backfill,
the data check) run as one-off commands of a release, on the same network, with a timeout.

These are optional capabilities: a backend that can do both satisfies :class:`StatefulBackend`,
and a configuration that needs them on a backend that cannot is refused up front.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from cautious.release import Release

__all__ = ["DependencySpec", "DependencyState", "OneOff", "StatefulBackend"]


@dataclass(frozen=True)
class DependencySpec:
    """A backing service: built from ``context`` (on the base image) or run from ``image``.

    ``ready_command`` runs inside it until it exits 0 (``pg_isready``, ``redis-cli ping``);
    without one, the dependency is ready once ``port`` accepts connections.
    """

    name: str
    port: int
    context: Path | None = None
    dockerfile: str = "Dockerfile"
    image: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    ready_command: tuple[str, ...] = ()
    ready_timeout_s: float = 60.0


@dataclass(frozen=True)
class DependencyState:
    """A dependency as it runs: where the instances reach it and whether this call started it."""

    name: str
    address: str  # host:port on the cluster network
    started: bool  # False when it was already running with the same specification
    ready_s: float


@dataclass(frozen=True)
class OneOff:
    """A one-off command as it ran: exit code (None when the timeout killed it), output."""

    exit_code: int | None
    seconds: float
    output: str


@runtime_checkable
class StatefulBackend(Protocol):
    """A backend that runs dependencies and one-off commands (both bounded in time)."""

    def ensure_dependency(self, spec: DependencySpec) -> DependencyState:
        """Start ``spec`` if it is not running as specified, and wait until it is ready."""
        ...

    def run_once(
        self,
        release: Release,
        command: Sequence[str],
        *,
        env: Mapping[str, str],
        timeout_s: float,
        files: Mapping[str, bytes] | None = None,
    ) -> OneOff:
        """Run ``command`` in a fresh container of ``release`` on the cluster network, with
        ``files`` (path → content) put in place first; kill it after ``timeout_s``."""
        ...
