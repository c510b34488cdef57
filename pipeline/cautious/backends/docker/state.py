"""The docker backend's state store: the cluster's lock and journal in a labelled volume.

The volume ``cautious-<cluster>-state`` lives in the engine that runs the cluster, so every
checkout and CI workspace that reaches the engine reads the same files. A small labelled
container (no network, ``sleep infinity``) mounts it; each operation is one ``exec`` of a shell
one-liner, with the text passed as an argument (never pasted into the script). ``create`` is the
shell's ``noclobber`` redirection, an ``O_EXCL`` open: atomic between concurrent callers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import docker.errors
from docker.models.containers import Container

from cautious.backends.docker.baseimage import ensure_base_image
from cautious.backends.state import too_large
from cautious.exceptions import SandboxError

if TYPE_CHECKING:
    from cautious.backends.docker.backend import DockerBackend

__all__ = ["VolumeStore"]

_MOUNT = "/state"
_MAX_ARGUMENT_BYTES = 120_000  # Linux refuses a single argument over 128 KiB
_READ = 'f="$0/$1"; [ -e "$f" ] || exit 0; [ "$(wc -c < "$f")" -le "$2" ] || exit 3; cat "$f"'
_APPEND = 'printf %s "$2" >> "$0/$1" && sync'
_CREATE = (
    '(set -C; printf %s "$2" > "$0/$1") 2>/dev/null && exit 0; [ -e "$0/$1" ] && exit 1; exit 2'
)
_REPLACE = 'printf %s "$2" > "$0/.$1.$$" && mv "$0/.$1.$$" "$0/$1" && sync'
_REMOVE = 'rm -f "$0/$1"'
_TOO_LARGE = 3
_EXISTS = 1


class VolumeStore:
    """Files in the cluster's state volume, reached through its state container."""

    def __init__(self, backend: DockerBackend) -> None:
        self.backend = backend
        self.volume = f"cautious-{backend.cluster}-state"
        self.where = f"Docker volume {self.volume}"
        self._container: Container | None = None

    def read(self, name: str, max_bytes: int) -> str:
        if not self._volume_exists():
            return ""  # reading creates nothing (`invoke history` of a cluster that is down)
        code, out = self._run(_READ, name, str(max_bytes))
        if code == _TOO_LARGE:
            raise too_large(self.where, name, max_bytes)
        self._check(code, "read", name)
        return out.decode("utf-8", errors="replace")

    def append(self, name: str, text: str) -> None:
        self._check(self._run(_APPEND, name, text)[0], "append to", name)

    def create(self, name: str, text: str) -> bool:
        code = self._run(_CREATE, name, text)[0]
        if code == _EXISTS:
            return False
        self._check(code, "create", name)
        return True

    def replace(self, name: str, text: str) -> None:
        self._check(self._run(_REPLACE, name, text)[0], "write", name)

    def remove(self, name: str) -> None:
        if self._volume_exists():  # gone with the cluster: nothing to remove, nothing to create
            self._check(self._run(_REMOVE, name)[0], "remove", name)

    def forget(self) -> None:
        """The state container is gone (teardown): reach it afresh next time."""
        self._container = None

    def _volume_exists(self) -> bool:
        if self._container is not None:
            return True
        try:
            self.backend.client.volumes.get(self.volume)
        except docker.errors.NotFound:
            return False
        return True

    def _check(self, code: int, what: str, name: str) -> None:
        if code != 0:
            raise SandboxError(f"could not {what} {name} in {self.where} (exit {code})")

    def _run(self, script: str, name: str, *args: str) -> tuple[int, bytes]:
        if sum(len(arg.encode()) for arg in args) > _MAX_ARGUMENT_BYTES:
            raise SandboxError(f"a record for {name} is over {_MAX_ARGUMENT_BYTES} bytes")
        try:
            result = self._ensure().exec_run(["sh", "-c", script, _MOUNT, name, *args], demux=True)
        except docker.errors.APIError as exc:
            self._container = None  # removed under us (sandbox.down): recreated next time
            raise SandboxError(f"{self.where} is not reachable: {exc.explanation or exc}") from None
        stdout = result.output[0] if result.output else None
        return int(result.exit_code), stdout or b""

    def _ensure(self) -> Container:
        """The running state container (created with its volume on first use)."""
        if self._container is not None:
            return self._container
        name = f"cautious-{self.backend.cluster}-state"
        container = self.backend.find(name)
        if container is None:
            container = self._create(name)
        if container.status != "running":
            container.start()
        self._container = container
        return container

    def _create(self, name: str) -> Container:
        client = self.backend.client
        labels = self.backend.labels(role="state")
        client.volumes.create(self.volume, labels=labels)  # idempotent
        image = ensure_base_image(client, self.backend.config.service.base_image, self.backend.say)
        try:
            created: Container = client.containers.create(
                image,
                ["sleep", "infinity"],
                name=name,
                labels=labels,
                network_mode="none",
                volumes={self.volume: {"bind": _MOUNT, "mode": "rw"}},
            )
        except docker.errors.APIError as exc:
            if exc.status_code != 409:  # 409: another checkout created it at the same moment
                raise SandboxError(f"could not create {name}: {exc.explanation or exc}") from None
            found = self.backend.find(name)
            if found is None:
                raise SandboxError(f"{name} vanished while being created") from None
            return found
        return created
