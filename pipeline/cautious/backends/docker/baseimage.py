"""The base image every sandbox image is built on, made offline when no registry answers.

There is no container registry on the machines this project runs on, so the
default base ``cautious/base:bookworm`` is bootstrapped from Debian's package mirror with
``debootstrap`` and ``docker import``ed, once; later calls find the tag and return at once.
A user who configures another base (``service.base_image: python:3.12-slim``) gets it from the
engine or its registry instead, and a clear error when neither has it.

With ``CAUTIOUS_BASE_IMAGE_CACHE`` set to a folder, a bootstrapped image is also ``docker save``d
there, under a name keyed on the Debian suite and everything the image is made of
(:func:`cache_key`), and a later engine without the image ``docker load``s it instead of
bootstrapping again. CI caches that folder (the GitHub setup action does, with actions/cache).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import docker.errors

from cautious.exceptions import PrerequisiteError, SandboxError

__all__ = [
    "BOOTSTRAPPABLE_PREFIX",
    "BOOTSTRAP_PACKAGES",
    "CACHE_ENV",
    "cache_key",
    "debian_mirror",
    "ensure_base_image",
    "saved_image",
]

BOOTSTRAPPABLE_PREFIX = "cautious/base:"
# python3 runs the sample service, haproxy the load balancer, iproute2 gives chaos its `tc`.
BOOTSTRAP_PACKAGES = ("python3", "haproxy", "iproute2", "ca-certificates")
_SUITE = "bookworm"
_VARIANT = "minbase"
_IMPORT_CHANGES = ("LABEL cautious.managed=true cautious.role=base",)
CACHE_ENV = "CAUTIOUS_BASE_IMAGE_CACHE"
_LOCK_PATH = Path(tempfile.gettempdir()) / "cautious-base-image.lock"
_BOOTSTRAP_TIMEOUT_S = 900


def ensure_base_image(
    client: docker.DockerClient, name: str, say: Callable[[str], None] = print
) -> str:
    """Return the id of image ``name``: present, pulled, or (for ``cautious/base:*``) built."""
    image_id = _local_image_id(client, name)
    if image_id:
        return image_id
    with _exclusive_lock():  # a concurrent caller may have built it while we waited
        image_id = _local_image_id(client, name)
        if image_id:
            return image_id
        folder = _cache_folder()
        saved = saved_image(name, folder) if folder and _bootstrappable(name) else None
        if saved is not None and saved.is_file():
            return _load(client, name, saved, say)
        if _try_pull(client, name, say):
            return client.images.get(name).id  # type: ignore[no-any-return]
        if not _bootstrappable(name):
            raise PrerequisiteError(
                f"base image {name!r} (service.base_image) is neither on this engine nor "
                f"pullable; build or load it, or use the default cautious/base:{_SUITE}"
            )
        image_id = _bootstrap(client, name, say)
        if saved is not None:
            _save(client, name, saved, say)
        return image_id


def cache_key() -> str:
    """The Debian suite plus a digest of everything a bootstrapped image is made of.

    A saved image is reused only while its recipe is the same: another package, variant or
    label gives another key, so CI never restores a stale base image.
    """
    recipe = json.dumps(
        {
            "suite": _SUITE,
            "variant": _VARIANT,
            "packages": BOOTSTRAP_PACKAGES,
            "changes": _IMPORT_CHANGES,
        },
        sort_keys=True,
    )
    return f"{_SUITE}-{hashlib.sha256(recipe.encode()).hexdigest()[:16]}"


def saved_image(name: str, folder: Path) -> Path:
    """Where image ``name`` is saved in the cache folder (one file per name and recipe)."""
    return folder / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}-{cache_key()}.tar"


def debian_mirror(sources_dir: Path = Path("/etc/apt")) -> str:
    """The Debian mirror apt already uses (deb822 ``.sources`` or classic ``sources.list``)."""
    candidates = [sources_dir / "sources.list", *sorted(sources_dir.glob("sources.list.d/*"))]
    for path in candidates:
        if not path.is_file() or path.suffix not in {".list", ".sources", ""}:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        match = re.search(r"^URIs:\s*(\S*/debian)/?\s*$", text, re.MULTILINE) or re.search(
            r"^deb\s+(?:\[[^\]]*\]\s+)?(\S*/debian)/?\s+" + _SUITE, text, re.MULTILINE
        )
        if match:
            return match.group(1)
    return "http://deb.debian.org/debian"


def _bootstrappable(name: str) -> bool:
    return name.startswith(BOOTSTRAPPABLE_PREFIX)


def _cache_folder() -> Path | None:
    configured = os.environ.get(CACHE_ENV, "").strip()
    return Path(configured) if configured else None


def _load(client: docker.DockerClient, name: str, saved: Path, say: Callable[[str], None]) -> str:
    with saved.open("rb") as handle:
        client.images.load(handle)
    image_id = _local_image_id(client, name)
    if image_id is None:
        raise SandboxError(f"{saved} was loaded but holds no image {name}; delete it")
    say(f"base image {name}: loaded from {saved}, no bootstrap needed")
    return image_id


def _save(client: docker.DockerClient, name: str, saved: Path, say: Callable[[str], None]) -> None:
    saved.parent.mkdir(parents=True, exist_ok=True)
    partial = saved.with_name(saved.name + ".partial")  # never leave a torn file under the name
    with partial.open("wb") as handle:
        for chunk in client.images.get(name).save(named=True):
            handle.write(chunk)
    partial.replace(saved)
    say(f"base image {name}: saved to {saved} for the next engine")


def _local_image_id(client: docker.DockerClient, name: str) -> str | None:
    try:
        return client.images.get(name).id  # type: ignore[no-any-return]
    except docker.errors.ImageNotFound:
        return None


def _try_pull(client: docker.DockerClient, name: str, say: Callable[[str], None]) -> bool:
    try:
        client.images.pull(name)
    except docker.errors.APIError as exc:
        say(f"base image {name}: not pullable ({exc.explanation or exc}); building it offline")
        return False
    return True


def _bootstrap(client: docker.DockerClient, name: str, say: Callable[[str], None]) -> str:
    if shutil.which("debootstrap") is None:
        raise PrerequisiteError(
            "debootstrap is not installed; run scripts/install (or apt-get install debootstrap)"
        )
    mirror = debian_mirror()
    say(f"base image {name}: debootstrap {_SUITE} from {mirror} (about a minute, once)")
    with tempfile.TemporaryDirectory(prefix="cautious-rootfs-") as workdir:
        rootfs = Path(workdir) / "rootfs"
        command = [
            "debootstrap",
            f"--variant={_VARIANT}",
            f"--include={','.join(BOOTSTRAP_PACKAGES)}",
            _SUITE,
            str(rootfs),
            mirror,
        ]
        _run(command, "debootstrap")
        tarball = Path(workdir) / "rootfs.tar"
        _run(["tar", "-C", str(rootfs), "-cf", str(tarball), "."], "tar")
        repository, tag = name.rsplit(":", 1)
        client.api.import_image_from_file(
            str(tarball),
            repository=repository,
            tag=tag,
            changes=list(_IMPORT_CHANGES),
        )
    image_id = _local_image_id(client, name)
    if image_id is None:
        raise SandboxError(f"docker import of {name} reported success but the tag is missing")
    say(f"base image {name}: built {image_id[:19]}")
    return image_id


def _run(command: list[str], what: str) -> None:
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=_BOOTSTRAP_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        raise SandboxError(
            f"{what} ran past {_BOOTSTRAP_TIMEOUT_S} s; is the mirror reachable?"
        ) from None
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-5:]
        raise SandboxError(f"{what} failed (exit {result.returncode}): {' | '.join(tail)}")


@contextlib.contextmanager
def _exclusive_lock() -> Iterator[None]:
    """A host-wide file lock so two processes never bootstrap the same image at once."""
    with _LOCK_PATH.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes
        yield
