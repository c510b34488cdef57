"""Which backends exist: ``cluster.backend`` in cautious.yaml names one of these.

Each entry points at a class taking ``(config, *, say)``, imported only when chosen, so a machine
without Docker (or without Fabric) can run every other backend. Adding a backend is one module
plus one line here; the configuration accepts the new name at once.
"""

from __future__ import annotations

__all__ = ["BACKENDS"]

BACKENDS: dict[str, str] = {
    "docker": "cautious.backends.docker:DockerBackend",
    "ssh": "cautious.backends.ssh.backend:SshBackend",
    "ssh-sandbox": "cautious.backends.ssh.sandbox:SshSandboxBackend",
}
