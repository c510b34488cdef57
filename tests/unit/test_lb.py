"""HAProxy configuration rendering: one slot per possible instance, all health-checked."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from cautious.cluster.lb import MAX_SLOTS, render_haproxy_config, slot_names
from cautious.config import Config


def test_slots_are_named_after_the_service() -> None:
    assert slot_names("shop", 3) == ["shop-1", "shop-2", "shop-3"]


def test_the_backend_has_a_health_checked_server_per_slot() -> None:
    rendered = render_haproxy_config(Config())
    servers = [line for line in rendered.splitlines() if line.strip().startswith("server ")]
    assert len(servers) == MAX_SLOTS
    assert all(" check " in line for line in servers)
    assert "option httpchk GET /ready" in rendered


def test_health_checks_and_timeouts_follow_the_configuration() -> None:
    config = Config.model_validate(
        {"lb": {"check_interval_ms": 700, "rise": 3, "fall": 4, "timeout_server_ms": 1234}}
    )
    rendered = render_haproxy_config(config)
    assert "inter 700ms" in rendered and "rise 3 fall 4" in rendered
    assert "timeout server 1234ms" in rendered


def test_redispatch_can_be_switched_off() -> None:
    config = Config.model_validate({"lb": {"redispatch": False, "retries": 0}})
    rendered = render_haproxy_config(config)
    assert "option redispatch" not in rendered
    assert "retries 0" in rendered


def test_slots_are_resolved_at_run_time_so_start_up_never_blocks_on_dns() -> None:
    assert "init-addr none resolvers docker" in render_haproxy_config(Config())


def test_the_runtime_api_is_an_admin_socket() -> None:
    assert "level admin" in render_haproxy_config(Config())


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed")
def test_haproxy_accepts_the_rendered_configuration(tmp_path: Path) -> None:
    path = tmp_path / "haproxy.cfg"
    path.write_text(render_haproxy_config(Config()))
    result = subprocess.run(
        ["haproxy", "-c", "-f", str(path)], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stdout + result.stderr
