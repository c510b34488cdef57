"""A base image saved to CAUTIOUS_BASE_IMAGE_CACHE is loaded on the next engine, not rebuilt.

The bootstrap itself (debootstrap, about a minute) is replaced by importing a one-file image, so
the test is about what the cache does: save after a bootstrap, load instead of the next one.
"""

from __future__ import annotations

import contextlib
import io
import tarfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import docker.errors
import pytest
from cautious.backends.docker import baseimage

pytestmark = pytest.mark.docker


def _tiny_rootfs() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        content = b"a stand-in for the debootstrapped root file system\n"
        member = tarfile.TarInfo("etc/cautious-test")
        member.size = len(content)
        archive.addfile(member, io.BytesIO(content))
    return buffer.getvalue()


@pytest.fixture
def name(docker_client: docker.DockerClient) -> Iterator[str]:
    """A bootstrappable image name that exists nowhere yet; removed afterwards."""
    image = f"{baseimage.BOOTSTRAPPABLE_PREFIX}cachetest-{uuid.uuid4().hex[:8]}"
    yield image
    with contextlib.suppress(docker.errors.ImageNotFound):
        docker_client.images.remove(image, force=True)


def _fake_bootstrap(calls: list[str]) -> Callable[..., str]:
    def bootstrap(client: docker.DockerClient, name: str, say: Callable[[str], None]) -> str:
        calls.append(name)
        repository, tag = name.rsplit(":", 1)
        client.api.import_image_from_data(
            _tiny_rootfs(), repository=repository, tag=tag, changes=["LABEL cautious.test=true"]
        )
        return client.images.get(name).id  # type: ignore[no-any-return]

    return bootstrap


def test_a_saved_base_image_is_loaded_instead_of_bootstrapped_again(
    docker_client: docker.DockerClient,
    name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(baseimage.CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(baseimage, "_try_pull", lambda *args: False)  # no registry here
    bootstraps: list[str] = []
    monkeypatch.setattr(baseimage, "_bootstrap", _fake_bootstrap(bootstraps))
    said: list[str] = []

    built = baseimage.ensure_base_image(docker_client, name, say=said.append)

    saved = baseimage.saved_image(name, tmp_path)
    assert bootstraps == [name]
    assert saved.is_file() and not list(tmp_path.glob("*.partial"))
    docker_client.images.remove(name, force=True)  # the next engine starts without it

    loaded = baseimage.ensure_base_image(docker_client, name, say=said.append)

    assert loaded == built
    assert bootstraps == [name], "a saved image must not be bootstrapped again"
    assert said[-1] == f"base image {name}: loaded from {saved}, no bootstrap needed"


def test_without_the_cache_folder_nothing_is_saved(
    docker_client: docker.DockerClient,
    name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(baseimage.CACHE_ENV, raising=False)
    monkeypatch.setattr(baseimage, "_try_pull", lambda *args: False)
    monkeypatch.setattr(baseimage, "_bootstrap", _fake_bootstrap([]))

    baseimage.ensure_base_image(docker_client, name, say=lambda _: None)

    assert list(tmp_path.iterdir()) == []
