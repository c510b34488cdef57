"""The docker backend's pure parts: how HAProxy reaches its containers (no engine needed)."""

from __future__ import annotations

from typing import Any, cast

from cautious.backends.base import MAX_SLOTS
from cautious.backends.docker import DockerBackend
from cautious.config import Config


def backend() -> DockerBackend:
    return DockerBackend(Config(), client=cast(Any, object()))


def test_slots_resolve_through_docker_dns_at_run_time_so_start_up_never_blocks() -> None:
    addressing = backend().lb_addressing()
    assert addressing.default_server == "init-addr none resolvers docker"
    assert "nameserver dns 127.0.0.11:53" in addressing.sections


def test_every_slot_is_reached_by_its_name_on_the_service_port() -> None:
    servers = backend().lb_addressing().servers
    assert len(servers) == MAX_SLOTS
    assert servers[0] == ("sample-1", "sample-1:8000")
