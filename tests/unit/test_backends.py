"""Backends come from a registry keyed by ``cluster.backend``: a new one is one entry."""

from __future__ import annotations

import pytest
from cautious.backends import BACKENDS, make_backend
from cautious.backends.fake import FakeBackend
from cautious.config import Config


def test_a_registered_backend_is_accepted_by_the_config_and_made_by_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(BACKENDS, "fake", "cautious.backends.fake:FakeBackend")
    config = Config.model_validate({"cluster": {"backend": "fake"}})
    backend = make_backend(config, say=lambda _: None)
    assert isinstance(backend, FakeBackend) and backend.config is config


def test_the_default_backend_is_docker() -> None:
    assert Config().cluster.backend == "docker"
    assert BACKENDS["docker"] == "cautious.backends.docker:DockerBackend"
