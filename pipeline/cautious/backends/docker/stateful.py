"""Dependencies and one-off commands as containers, for the docker backend.

A dependency is a container ``cautious-<cluster>-dep-<name>`` on the cluster network with the
network alias ``<name>`` (instances reach ``db:5432``), labelled with a digest of its
specification: ``ensure_dependency`` keeps a running one with the same digest (and its data),
and replaces one whose specification changed. Built dependencies use the base image through
the ``BASE_IMAGE`` build argument, like the service. A one-off command is a container of the
release on the same network; files go in with ``put_archive`` (no bind mount, so a remote
engine works too), and the container is killed at its deadline and always removed.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import time
from collections.abc import Mapping, Sequence
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

import docker.errors
from docker.models.containers import Container

from cautious.backends.dependencies import DependencySpec, DependencyState, OneOff
from cautious.backends.docker.baseimage import ensure_base_image
from cautious.backends.docker.images import LABEL_PREFIX, build_image, managed_labels
from cautious.exceptions import SandboxError
from cautious.release import Release

if TYPE_CHECKING:
    from cautious.backends.docker.backend import DockerBackend

__all__ = ["dependency_container_name", "ensure_dependency", "run_once"]

_POLL_S = 0.25
_OUTPUT_TAIL = 40  # lines of a one-off's output kept


def dependency_container_name(backend: DockerBackend, name: str) -> str:
    return f"cautious-{backend.cluster}-dep-{name}"


def ensure_dependency(backend: DockerBackend, spec: DependencySpec) -> DependencyState:
    """Start ``spec`` unless it already runs as specified; wait until it is ready."""
    digest = _digest(spec)
    name = dependency_container_name(backend, spec.name)
    current = backend.find(name)
    started = time.monotonic()
    labels = current.labels if current is not None and current.status == "running" else {}
    if labels.get(f"{LABEL_PREFIX}dependency-spec") == digest:
        return DependencyState(spec.name, f"{spec.name}:{spec.port}", False, 0.0)
    if current is not None:
        backend.say(f"dependency {spec.name}: its specification changed; starting it afresh")
        current.remove(force=True)
    image = _image(backend, spec)
    network = backend.ensure_network()
    try:
        container = backend.client.containers.run(
            image,
            name=name,
            hostname=spec.name,
            detach=True,
            environment=dict(spec.env),
            labels=backend.labels(
                role="dependency", dependency=spec.name, **{"dependency-spec": digest}
            ),
            network=network.name,
            networking_config={
                network.name: backend.client.api.create_endpoint_config(aliases=[spec.name])
            },
        )
    except docker.errors.APIError as exc:
        raise SandboxError(
            f"could not start dependency {spec.name}: {exc.explanation or exc}"
        ) from None
    _wait_ready(container, spec)
    ready_s = time.monotonic() - started
    backend.say(f"dependency {spec.name}: ready in {ready_s:.1f} s")
    return DependencyState(spec.name, f"{spec.name}:{spec.port}", True, ready_s)


def run_once(
    backend: DockerBackend,
    release: Release,
    command: Sequence[str],
    *,
    env: Mapping[str, str],
    timeout_s: float,
    files: Mapping[str, bytes] | None = None,
) -> OneOff:
    """Run ``command`` in a fresh container of ``release``; kill it at the deadline."""
    network = backend.ensure_network()
    started = time.monotonic()
    try:
        container = backend.client.containers.create(
            release.image,
            command=list(command),
            environment=dict(env),
            labels=backend.labels(role="one-off", release=release.label),
            network=network.name,
        )
    except docker.errors.APIError as exc:
        raise SandboxError(
            f"could not create a one-off container of {release.label}: {exc.explanation or exc}"
        ) from None
    try:
        if files:
            container.put_archive("/", _tar_of(files))
        container.start()
        code = _wait_exit(container, started + timeout_s)
        if code is None:
            container.kill()
        output = container.logs(tail=_OUTPUT_TAIL).decode(errors="replace")
        return OneOff(code, time.monotonic() - started, output)
    finally:
        container.remove(force=True)


def _wait_exit(container: Container, deadline: float) -> int | None:
    """The exit code, or None when the deadline came first."""
    while True:
        container.reload()
        if container.status in {"exited", "dead"}:
            return int(container.attrs["State"]["ExitCode"])
        if time.monotonic() >= deadline:
            return None
        time.sleep(_POLL_S)


def _wait_ready(container: Container, spec: DependencySpec) -> None:
    """Poll the readiness command (or the port) until it answers; SandboxError at the deadline."""
    probe = list(spec.ready_command) or ["python3", "-c", _PORT_PROBE, str(spec.port)]
    deadline = time.monotonic() + spec.ready_timeout_s
    while True:
        container.reload()
        if container.status not in {"created", "running"}:
            tail = container.logs(tail=5).decode(errors="replace").strip().replace("\n", " | ")
            raise SandboxError(f"dependency {spec.name} exited while starting: {tail}")
        if container.status == "running":
            code, _ = container.exec_run(probe)
            if code == 0:
                return
        if time.monotonic() >= deadline:
            raise SandboxError(
                f"dependency {spec.name} was not ready after {spec.ready_timeout_s:g} s "
                f"(`{' '.join(probe)}` never exited 0)"
            )
        time.sleep(_POLL_S)


_PORT_PROBE = (
    "import socket, sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), 1).close()"
)


def _image(backend: DockerBackend, spec: DependencySpec) -> str:
    if spec.context is None:
        if spec.image is None:
            raise SandboxError(f"dependency {spec.name} has neither a build context nor an image")
        return spec.image
    base = ensure_base_image(backend.client, backend.config.service.base_image, backend.say)
    return build_image(
        backend.client,
        f"dependency {spec.name}",
        path=str(backend.config.path(spec.context)),
        dockerfile=spec.dockerfile,
        buildargs={"BASE_IMAGE": base},
        tag=f"cautious/{backend.config.service.name}-{spec.name}:latest",
        # not the cluster's label: the image is a build cache every cluster shares
        labels=managed_labels(role="dependency-image", dependency=spec.name),
    )


def _digest(spec: DependencySpec) -> str:
    document = {
        "image": spec.image,
        "context": str(spec.context),
        "dockerfile": spec.dockerfile,
        "env": dict(sorted(spec.env.items())),
        "port": spec.port,
    }
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()[:16]


def _tar_of(files: Mapping[str, bytes]) -> bytes:
    """A tar of ``files`` (absolute path → content) with their folders, to unpack at ``/``."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        folders = {
            str(parent).lstrip("/")
            for path in files
            for parent in PurePosixPath(path).parents
            if str(parent) != "/"
        }
        for folder in sorted(folders):
            info = tarfile.TarInfo(folder)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            archive.addfile(info)
        for path, content in files.items():
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size = len(content)
            info.mode = 0o644
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()
