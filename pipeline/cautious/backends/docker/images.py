"""Releases as Docker images: the service image plus its environment, one thin image per label.

A named release is the service image with its environment overlay baked into a thin image of
its own, so the release is identified by an image id (the *digest*; there is no registry to
give a repository digest) and running it needs no extra configuration. Every image Cautious
builds carries ``cautious.*`` labels, so it can remove exactly what it made.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Mapping

import docker
import docker.errors

from cautious.backends.docker.baseimage import ensure_base_image
from cautious.config import Config
from cautious.exceptions import ConfigError, SandboxError
from cautious.release import Release

__all__ = [
    "LABEL_PREFIX",
    "build_image",
    "build_release",
    "find_release",
    "managed_labels",
    "release_by_digest",
]

LABEL_PREFIX = "cautious."


def managed_labels(**extra: str) -> dict[str, str]:
    """Labels on everything Cautious creates, so it can remove exactly that and nothing else."""
    return {f"{LABEL_PREFIX}managed": "true", **{LABEL_PREFIX + k: v for k, v in extra.items()}}


def find_release(client: docker.DockerClient, config: Config, label: str) -> Release | None:
    """The already built image of a release, if any."""
    try:
        image = client.images.get(_tag(config, label))
    except docker.errors.ImageNotFound:
        return None
    labels = image.labels or {}
    return Release(
        label=label,
        image=_tag(config, label),
        digest=image.id,
        git_sha=labels.get(f"{LABEL_PREFIX}git-sha") or None,
    )


def release_by_digest(client: docker.DockerClient, label: str, digest: str) -> Release:
    """Exactly the image a journal names, even if the label was rebuilt since."""
    try:
        client.images.get(digest)
    except docker.errors.ImageNotFound:
        raise SandboxError(
            f"the image of release {label} ({digest[:19]}) is gone from the engine; "
            f"rebuild it with `invoke build --release {label}`"
        ) from None
    return Release(label=label, image=digest, digest=digest)


def build_release(
    client: docker.DockerClient,
    config: Config,
    label: str,
    *,
    env: Mapping[str, str],
    git_sha: str | None,
    say: Callable[[str], None] = print,
) -> Release:
    """Build the service and bake ``env`` into it as release ``label``."""
    base = ensure_base_image(client, config.service.base_image, say)
    context = config.path(config.service.context)
    if not (context / config.service.dockerfile).is_file():
        raise ConfigError(
            f"service.context/service.dockerfile: no {config.service.dockerfile} in {context}"
        )
    service_image = build_image(
        client,
        f"service {config.service.name}",
        path=str(context),
        dockerfile=config.service.dockerfile,
        buildargs={"BASE_IMAGE": base},
        tag=_tag(config, "build"),
        labels=managed_labels(service=config.service.name),
    )
    lines = [f"FROM {service_image}", f"ENV CAUTIOUS_RELEASE={json.dumps(label)}"]
    lines += [f"ENV {key}={json.dumps(value)}" for key, value in sorted(env.items())]
    digest = build_image(
        client,
        f"release {label}",
        fileobj=io.BytesIO("\n".join(lines).encode()),
        tag=_tag(config, label),
        labels=managed_labels(
            service=config.service.name, release=label, **{"git-sha": git_sha or ""}
        ),
    )
    say(f"release {label}: {_tag(config, label)} {digest.removeprefix('sha256:')[:12]}")
    return Release(label=label, image=_tag(config, label), digest=digest, git_sha=git_sha)


def _tag(config: Config, label: str) -> str:
    return f"cautious/{config.service.name}:{label}"


def build_image(client: docker.DockerClient, what: str, **kwargs: object) -> str:
    """``docker build`` with the engine's cache; a failure becomes one readable line."""
    try:
        image, _ = client.images.build(rm=True, forcerm=True, **kwargs)
    except docker.errors.BuildError as exc:
        tail = [str(part.get("stream", part.get("error", ""))).strip() for part in exc.build_log]
        detail = " | ".join([line for line in tail if line][-4:])
        raise SandboxError(f"building {what} failed: {exc.msg} {detail}") from None
    except docker.errors.APIError as exc:
        raise SandboxError(f"building {what} failed: {exc.explanation or exc}") from None
    return image.id  # type: ignore[no-any-return]
