"""`invoke load` against an ordinary HTTP server on 127.0.0.1 (no Docker, no sandbox)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.rendering import assert_rerenders_identically

REPO = Path(__file__).resolve().parents[2]


class _Hello(BaseHTTPRequestHandler):
    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        body = b"hello"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Instance", "plain-server")
        self.end_headers()
        self.wfile.write(body)

    do_GET = _answer
    do_POST = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def run_load(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "invoke", "load", *args, "--config", str(REPO / "cautious.yaml")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def test_load_measures_any_http_server_on_loopback(server_url: str, tmp_path: Path) -> None:
    result = run_load(
        "--url",
        server_url,
        "--rate",
        "40",
        "--duration",
        "5",
        "--claim",
        "min_requests=50",
        "--report-dir",
        str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["command"] == "load"
    assert report["verdict"] == "pass"
    assert report["availability"]["sent"] >= 100
    assert report["availability"]["per_instance"]["plain-server"]["sent"] > 0
    assert (tmp_path / "junit.xml").is_file() and (tmp_path / "report.html").is_file()
    assert_rerenders_identically(tmp_path)


def test_load_refuses_an_address_that_is_not_loopback(tmp_path: Path) -> None:
    result = run_load(
        "--url", "http://192.0.2.1/", "--duration", "2", "--report-dir", str(tmp_path)
    )
    assert result.returncode == 2
    assert "loopback" in result.stderr
    assert "Traceback" not in result.stderr


def test_load_rejects_a_duration_that_is_not_a_number() -> None:
    result = run_load("--url", "http://127.0.0.1:1", "--duration", "soon")
    assert result.returncode == 2
    assert "--duration" in result.stderr
