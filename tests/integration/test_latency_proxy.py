"""The docker backend's latency proxy (the fallback where the kernel has no netem), run here
as a plain process between a client and a local server."""

from __future__ import annotations

import http.server
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
from cautious.backends.docker.faults import PROXY_SCRIPT


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def upstream() -> Iterator[int]:
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"hello"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()


def _proxy(upstream: int, delay_s: float, loss: float) -> tuple[subprocess.Popen[str], int]:
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-u",
            "-c",
            PROXY_SCRIPT,
            *(str(value) for value in (port, upstream, delay_s, 0, loss)),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "proxy ready"
    return process, port


def _timed_get(port: int) -> tuple[float, bytes]:
    import urllib.request

    started = time.monotonic()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as response:
        body = response.read()
    return time.monotonic() - started, body


def test_the_proxy_adds_the_delay_to_every_response(upstream: int) -> None:
    direct, body = _timed_get(upstream)
    process, port = _proxy(upstream, 0.3, 0.0)
    try:
        for _ in range(3):
            seconds, proxied = _timed_get(port)
            assert proxied == body == b"hello"
            assert 0.3 <= seconds < 0.3 + direct + 0.5
    finally:
        process.kill()
        process.wait()


def test_proxy_loss_costs_retransmission_timeouts(upstream: int) -> None:
    process, port = _proxy(upstream, 0.0, 0.99)  # nearly every chunk "lost" at least once
    try:
        seconds, body = _timed_get(port)
        assert body == b"hello"
        assert seconds >= 0.2  # at least one 200 ms RTO
    finally:
        process.kill()
        process.wait()
