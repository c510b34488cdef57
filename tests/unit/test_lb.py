"""HAProxy configuration rendering: one server per slot the backend offers, all health-checked."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from cautious.backends.base import MAX_SLOTS, LbAddressing, slot_names
from cautious.cluster.lb import render_haproxy_config
from cautious.config import Config

RESOLVED = LbAddressing(
    servers=tuple((slot, f"{slot}:8000") for slot in slot_names("sample")),
    sections="resolvers dns\n    nameserver dns 127.0.0.11:53",
    default_server="init-addr none resolvers dns",
)


def render(config: Config, addressing: LbAddressing = RESOLVED) -> str:
    return render_haproxy_config(config, addressing)


def test_slots_are_named_after_the_service() -> None:
    assert slot_names("shop", 3) == ["shop-1", "shop-2", "shop-3"]


def test_the_backend_has_a_health_checked_server_per_slot() -> None:
    rendered = render(Config())
    backend = rendered.split("\nbackend app\n")[1].split("\nbackend ")[0]
    servers = [line for line in backend.splitlines() if line.strip().startswith("server ")]
    assert len(servers) == MAX_SLOTS
    assert all(" check " in line for line in servers)
    assert "option httpchk GET /ready" in rendered


def test_servers_take_the_addresses_the_cluster_backend_gives() -> None:
    fixed = LbAddressing(servers=(("web-1", "10.0.0.5:8000"), ("web-2", "10.0.0.6:8000")))
    rendered = render(Config(), fixed)
    assert "    server web-1 10.0.0.5:8000 check" in rendered
    assert "resolvers" not in rendered and "default-server" not in rendered


def test_health_checks_and_timeouts_follow_the_configuration() -> None:
    config = Config.model_validate(
        {"lb": {"check_interval_ms": 700, "rise": 3, "fall": 4, "timeout_server_ms": 1234}}
    )
    rendered = render(config)
    assert "inter 700ms" in rendered and "rise 3 fall 4" in rendered
    assert "timeout server 1234ms" in rendered


def test_redispatch_can_be_switched_off() -> None:
    config = Config.model_validate({"lb": {"redispatch": False, "retries": 0}})
    rendered = render(config)
    assert "option redispatch" not in rendered
    assert "retries 0" in rendered


def test_the_backend_s_resolvers_and_server_defaults_go_before_and_into_defaults() -> None:
    rendered = render(Config())
    assert rendered.index("resolvers dns") < rendered.index("defaults")
    assert "    default-server init-addr none resolvers dns\n" in rendered


def test_the_runtime_api_is_an_admin_socket() -> None:
    assert "level admin" in render(Config())


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed")
def test_haproxy_accepts_the_rendered_configuration(tmp_path: Path) -> None:
    path = tmp_path / "haproxy.cfg"
    path.write_text(render(Config()))
    result = subprocess.run(
        ["haproxy", "-c", "-f", str(path)], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_frontend_refuses_writes_while_the_read_only_switch_is_up() -> None:
    text = render_haproxy_config(Config(), LbAddressing(servers=(("s-1", "s-1:8000"),)))
    rule = next(line.strip() for line in text.splitlines() if "http-request return" in line)
    assert rule.startswith("http-request return status 503")
    assert "hdr Retry-After 5 hdr X-Instance read-only" in rule
    assert rule.endswith("if !{ method GET HEAD OPTIONS } { srv_is_up(read_only/on) }")
    assert "backend read_only\n    server on 127.0.0.1:9 disabled" in text
