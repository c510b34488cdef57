"""Errors Cautious raises on purpose, and the exit code each one maps to.

The hierarchy follows the command line contract (exit 0 pass, 1 failed, 2 bad input):

- :class:`CautiousError` — the root; carries ``exit_code`` so the task layer can turn any of
  them into a one-line message and the right exit code, with no traceback.
  - :class:`UsageError` (exit 2) — the user must fix something before anything can run:
    - :class:`ConfigError` — a bad key or value in ``cautious.yaml`` or a flag;
    - :class:`PrerequisiteError` — a missing tool, engine or image (e.g. no Docker engine);
    - :class:`LockHeld` — another rollout holds the cluster's lock;
    - :class:`HostKeyError` — an SSH host's key is not pinned in known_hosts, or differs.
  - :class:`SandboxError` (exit 1) — the world misbehaved: a container would not start,
    the load balancer's runtime API did not answer, a wait ran past its deadline.
    - :class:`GateFailed` — a gate (readiness, bake, claims) said no during a rollout.
    - :class:`HostUnreachable` — an SSH host stopped answering (before a rollout starts, the
      ssh backend reports it as a PrerequisiteError instead: nothing was touched yet).
    - :class:`Drifted` — the cluster or its journal changed outside Cautious; a deploy
      refuses to start on it without ``--force``.
"""

from __future__ import annotations

from cautious.verdict import Verdict

__all__ = [
    "CautiousError",
    "ConfigError",
    "Drifted",
    "GateFailed",
    "HostKeyError",
    "HostUnreachable",
    "LockHeld",
    "PrerequisiteError",
    "SandboxError",
    "UsageError",
]


class CautiousError(Exception):
    """Root of every error Cautious raises deliberately."""

    exit_code = 1


class UsageError(CautiousError):
    """The input is wrong; nothing was changed. Exit code 2."""

    exit_code = 2


class ConfigError(UsageError):
    """A configuration key or flag holds a value that is not allowed."""


class PrerequisiteError(UsageError):
    """Something the command needs is missing from this machine."""


class LockHeld(UsageError):
    """Another rollout is running on the same cluster."""


class HostKeyError(UsageError):
    """An SSH host presented a key that is not pinned (or not the pinned one)."""


class SandboxError(CautiousError):
    """An operation on the cluster failed or ran past its deadline."""


class GateFailed(SandboxError):
    """A rollout gate refused to let the next step run.

    ``verdict`` is the gate's own: ``fail``, or ``not-enough-data`` when it refused because it
    had too little data to judge (the run's verdict then says so instead of ``fail``).
    """

    def __init__(self, message: str, verdict: Verdict = "fail") -> None:
        super().__init__(message)
        self.verdict: Verdict = verdict


class Drifted(SandboxError):
    """``cautious audit`` found changes no journaled rollout made (or a broken journal)."""


class HostUnreachable(SandboxError):
    """An SSH host did not answer, or its connection broke mid-command."""
