"""The runtime API client against a real HAProxy process on loopback (no Docker needed)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cautious.cluster.lb import BACKEND_NAME, HAProxyRuntime
from cautious.exceptions import SandboxError

pytestmark = pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy not installed")


class _Ok(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[HAProxyRuntime]:
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), _Ok) for _ in range(2)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    runtime_port = _free_port()
    lines = "\n".join(
        f"    server web-{i} 127.0.0.1:{s.server_address[1]} check inter 100ms"
        for i, s in enumerate(servers, 1)
    )
    config = tmp_path / "haproxy.cfg"
    config.write_text(
        f"global\n    stats socket ipv4@127.0.0.1:{runtime_port} level admin\n"
        "defaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n"
        "    timeout server 5s\n"
        f"frontend web\n    bind 127.0.0.1:{_free_port()}\n    default_backend {BACKEND_NAME}\n"
        f"backend {BACKEND_NAME}\n    option httpchk GET /\n{lines}\n"
    )
    process = subprocess.Popen(["haproxy", "-db", "-f", str(config)], stderr=subprocess.DEVNULL)
    client = HAProxyRuntime("127.0.0.1", runtime_port, timeout_s=2)
    try:
        client.wait_answering(timeout_s=10)
        client.wait_until(["web-1", "web-2"], "up", timeout_s=10)
        yield client
    finally:
        process.terminate()
        process.wait(timeout=10)
        for server in servers:
            server.shutdown()
            server.server_close()


def test_stats_list_every_server_of_the_backend(runtime: HAProxyRuntime) -> None:
    stats = runtime.stats()
    assert set(stats) == {"web-1", "web-2"}
    assert all(stat.in_rotation for stat in stats.values())


def test_draining_a_server_takes_it_out_of_rotation(runtime: HAProxyRuntime) -> None:
    runtime.set_state("web-1", "drain")
    assert runtime.server("web-1").status == "DRAIN"
    assert not runtime.server("web-1").in_rotation


def test_maint_then_ready_brings_a_server_back(runtime: HAProxyRuntime) -> None:
    runtime.set_state("web-2", "maint")
    assert runtime.server("web-2").status.startswith("MAINT")
    runtime.set_state("web-2", "ready")
    runtime.wait_until(["web-2"], "up", timeout_s=5)


def test_weights_change_a_servers_share(runtime: HAProxyRuntime) -> None:
    runtime.set_weight("web-1", 25)
    assert runtime.server("web-1").weight == 25


def test_a_weight_outside_haproxys_range_is_refused(runtime: HAProxyRuntime) -> None:
    with pytest.raises(ValueError):
        runtime.set_weight("web-1", 300)


def test_an_unknown_server_is_a_clear_error(runtime: HAProxyRuntime) -> None:
    with pytest.raises(SandboxError, match="nope"):
        runtime.set_state("nope", "drain")


def test_a_wait_that_cannot_succeed_ends_at_its_deadline(runtime: HAProxyRuntime) -> None:
    with pytest.raises(SandboxError, match=r"not down after 0\.3 s"):
        runtime.wait_until(["web-1"], "down", timeout_s=0.3)


def test_an_absent_runtime_api_is_a_clear_error() -> None:
    with pytest.raises(SandboxError, match="did not answer"):
        HAProxyRuntime("127.0.0.1", _free_port(), timeout_s=0.5).wait_answering(timeout_s=0.3)
