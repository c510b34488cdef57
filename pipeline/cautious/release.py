"""Releases: immutable builds of the service, one image per label.

A named release is the service image plus its environment overlay from ``cautious.yaml``, baked
into a thin image of its own, so the release is identified by an image id (the *digest*; there is
no registry to give a repository digest) and running it needs no extra configuration.
"""

from __future__ import annotations

import io
import json
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors

from cautious.backends.baseimage import ensure_base_image
from cautious.config import Config
from cautious.exceptions import ConfigError, SandboxError

__all__ = [
    "LABEL_PREFIX",
    "Release",
    "build_image",
    "build_release",
    "find_release",
    "git_revision",
    "managed_labels",
]

LABEL_PREFIX = "cautious."


@dataclass(frozen=True)
class Release:
    """One immutable build: what the journal records and the backend runs."""

    label: str
    image: str  # the tag, e.g. cautious/sample:v2
    digest: str  # the image id, sha256:…
    git_sha: str | None = None

    @property
    def short_digest(self) -> str:
        return self.digest.removeprefix("sha256:")[:12]


def managed_labels(**extra: str) -> dict[str, str]:
    """Labels on everything Cautious creates, so it can remove exactly that and nothing else."""
    return {f"{LABEL_PREFIX}managed": "true", **{LABEL_PREFIX + k: v for k, v in extra.items()}}


def git_revision(folder: Path) -> str | None:
    """Short sha of the working tree's HEAD, with ``-dirty`` when it has local changes."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(folder), *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()

    try:
        sha = git("rev-parse", "--short=12", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{sha}-dirty" if dirty else sha


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


def build_release(
    client: docker.DockerClient,
    config: Config,
    label: str,
    *,
    env: Mapping[str, str] | None = None,
    say: Callable[[str], None] = print,
) -> Release:
    """Build the service and bake ``env`` (default: the named release's overlay) into it."""
    overlay = config.release_env(label) if env is None else {**config.service.env, **env}
    base = ensure_base_image(client, config.service.base_image, say)
    context = config.path(config.service.context)
    if not (context / config.service.dockerfile).is_file():
        raise ConfigError(
            f"service.context/service.dockerfile: no {config.service.dockerfile} in {context}"
        )
    sha = git_revision(config.root) or ""
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
    lines += [f"ENV {key}={json.dumps(value)}" for key, value in sorted(overlay.items())]
    digest = build_image(
        client,
        f"release {label}",
        fileobj=io.BytesIO("\n".join(lines).encode()),
        tag=_tag(config, label),
        labels=managed_labels(service=config.service.name, release=label, **{"git-sha": sha}),
    )
    say(f"release {label}: {_tag(config, label)} {digest.removeprefix('sha256:')[:12]}")
    return Release(label=label, image=_tag(config, label), digest=digest, git_sha=sha or None)


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
