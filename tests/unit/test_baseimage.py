"""The base image's cache key: the Debian suite plus a digest of the image's recipe."""

from __future__ import annotations

from pathlib import Path

import pytest
from cautious.backends.docker import baseimage


def test_the_cache_key_starts_with_the_debian_suite_and_is_stable() -> None:
    key = baseimage.cache_key()
    assert key.startswith("bookworm-")
    assert len(key.removeprefix("bookworm-")) == 16
    assert baseimage.cache_key() == key


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("BOOTSTRAP_PACKAGES", ("python3", "haproxy")),
        ("_VARIANT", "buildd"),
        ("_IMPORT_CHANGES", ("LABEL other=true",)),
        ("_SUITE", "trixie"),
    ],
)
def test_another_recipe_gives_another_key(
    setting: str, value: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = baseimage.cache_key()
    monkeypatch.setattr(baseimage, setting, value)
    assert baseimage.cache_key() != before


def test_a_saved_image_is_one_file_per_image_name_and_recipe(tmp_path: Path) -> None:
    saved = baseimage.saved_image("cautious/base:bookworm", tmp_path)
    assert saved == tmp_path / f"cautious_base_bookworm-{baseimage.cache_key()}.tar"
    assert baseimage.saved_image("cautious/base:other", tmp_path) != saved
