"""The shadow plugin inside a real Locust: mirrored GETs, pairs logged, compared after."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cautious.measure.shadow import (
    SHADOW_LOG_ENV,
    SHADOW_PLUGIN,
    SHADOW_TARGET_ENV,
    ShadowRules,
    compare,
    read_shadow_log,
)

USERS = """
from locust import FastHttpUser, constant, task

class Reader(FastHttpUser):
    wait_time = constant(0.05)

    @task
    def read(self):
        self.client.get("/users/z", name="/users/[id]")
        self.client.get("/")
        self.client.put("/users/z", json={"name": "x"})
"""


@contextmanager
def _service(release: str, fold_accents: bool) -> Iterator[str]:
    """A loopback service: GET / names the release, GET /users/z answers Zoë (or Zoe)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/":
                body = {"release": release}
            else:
                body = {"id": "z", "name": "Zoe" if fold_accents else "Zoë"}
            payload = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_PUT(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _mirror(tmp_path: Path, fold_accents: bool) -> Path:
    users = tmp_path / "users.py"
    users.write_text(USERS)
    log = tmp_path / "shadow.jsonl"
    target = tmp_path / "shadow-target"
    with _service("v1", False) as primary, _service("v2", fold_accents) as shadow:
        target.write_text(shadow)  # the shadow gate names the candidate in this file
        subprocess.run(
            [
                sys.executable,
                "-m",
                "locust",
                "--headless",
                "-f",
                f"{users},{SHADOW_PLUGIN}",
                "--host",
                primary,
                "-u",
                "4",
                "-r",
                "4",
                "-t",
                "10s",
                "--only-summary",
                "--exit-code-on-error",
                "0",
            ],
            env={
                "PATH": "/usr/bin:/bin",
                SHADOW_TARGET_ENV: str(target),
                SHADOW_LOG_ENV: str(log),
            },
            cwd=tmp_path,
            capture_output=True,
            timeout=60,
            check=True,
        )
    return log


def test_mirrored_reads_of_a_subtle_release_mismatch_on_one_endpoint(tmp_path: Path) -> None:
    pairs = read_shadow_log(_mirror(tmp_path, fold_accents=True))
    assert {pair.method for pair in pairs} == {"GET"}  # the PUTs were never mirrored
    report = compare(
        pairs, ShadowRules(ignore_fields=("release",)), max_mismatch_ratio=0.01, min_compared=20
    )
    by_name = {item.endpoint: item for item in report.endpoints}
    assert by_name["GET /users/[id]"].mismatch_ratio == 1.0
    assert by_name["GET /"].mismatched == 0
    assert report.verdict == "fail"


def test_a_release_differing_only_in_an_ignored_field_passes(tmp_path: Path) -> None:
    pairs = read_shadow_log(_mirror(tmp_path, fold_accents=False))
    ignored = compare(
        pairs, ShadowRules(ignore_fields=("release",)), max_mismatch_ratio=0.0, min_compared=20
    )
    assert ignored.verdict == "pass", ignored.reason
    strict = compare(pairs, ShadowRules(), max_mismatch_ratio=0.0, min_compared=20)
    assert strict.verdict == "fail"
