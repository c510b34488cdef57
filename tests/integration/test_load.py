"""A real Locust subprocess against a real HTTP server on 127.0.0.1 (no Docker needed).

Each test is bounded by the load's own hard deadline and by explicit polling deadlines.
"""

from __future__ import annotations

import itertools
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar
from urllib.parse import parse_qs, urlsplit

import pytest
from cautious.exceptions import ConfigError
from cautious.measure.availability import availability_of_logs, compute_availability
from cautious.measure.load import LoadHandle, LoadProgress, run_load, start_load
from cautious.measure.requestlog import read_request_log


class _Handler(BaseHTTPRequestHandler):
    """The sample service's surface: any path answers, /slow?ms=N sleeps; headers say who."""

    def _answer(self, status: int) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        query = parse_qs(urlsplit(self.path).query)
        if self.path.startswith("/slow"):
            time.sleep(int(query.get("ms", ["0"])[0]) / 1000)
        body = b"ok\n"
        self.send_response(status)
        self.send_header("X-Instance", "it-1")
        self.send_header("X-Release", "r1")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._answer(200)

    def do_POST(self) -> None:
        self._answer(201)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: thousands of requests would flood the test output."""


class _NumberingHandler(_Handler):
    """Names every answer uniquely (``X-Instance: req-N``) and remembers the names, so a
    request log can be checked for every request exactly once."""

    served: ClassVar[list[str]] = []
    _numbers = itertools.count(1)

    def send_header(self, keyword: str, value: str) -> None:
        if keyword == "X-Instance":
            value = f"req-{next(self._numbers)}"
            self.served.append(value)
        super().send_header(keyword, value)


class _Server:
    """A ThreadingHTTPServer on a fixed loopback port that can go away and come back."""

    def __init__(self, handler: type[BaseHTTPRequestHandler] = _Handler) -> None:
        self._handler = handler
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port: int = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler)
        server.daemon_threads = True
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._server = server
        self._thread.start()

    def stop(self) -> None:
        """Close the listening socket: new connections are refused until start()."""
        if self._server is not None and self._thread is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
            self._server = None


@pytest.fixture
def server() -> Iterator[_Server]:
    running = _Server()
    running.start()
    yield running
    running.stop()


def _poll(handle: LoadHandle, done: Callable[[LoadProgress], bool], within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if done(handle.progress()):
            return
        time.sleep(0.2)
    pytest.fail(f"no such progress within {within_s} s: {handle.progress()}")


def test_steady_load_is_logged_at_the_target_rate(server: _Server, tmp_path: Path) -> None:
    run = run_load(server.url, rate=50, duration_s=5, users=25, timeout_s=2, out_dir=tmp_path)

    assert run.ok, run.stderr_tail
    assert run.request_log == tmp_path / "requests.csv"
    assert run.stats_csv.is_file()
    records = read_request_log(run.request_log)
    assert len(records) > 150
    availability = compute_availability(records, target_rate=50)
    achieved = availability.sent / availability.seconds
    assert 0.9 * 50 <= achieved <= 1.1 * 50, [row.sent for row in availability.per_second]
    assert {r.instance for r in records} == {"it-1"}
    assert {r.release for r in records} == {"r1"}
    assert {r.status for r in records} <= {200, 201}
    assert all(not r.error for r in records)
    assert {r.name for r in records} >= {"/", "/items", "/slow"}
    assert {r.method for r in records} == {"GET", "POST"}
    assert all(run.started <= r.start <= run.ended for r in records)


def test_refused_connections_are_status_zero_rows(server: _Server, tmp_path: Path) -> None:
    with start_load(server.url, 50, 30, 25, 1, tmp_path) as handle:
        _poll(handle, lambda p: p.sent >= 25, within_s=10)
        stopped_at = time.time()
        server.stop()
        _poll(handle, lambda p: p.failed >= 25, within_s=5)
        restarted_at = time.time()
        server.start()
        _poll(handle, lambda p: p.sent - p.failed >= 75, within_s=5)
        run = handle.stop()

    assert run.stopped and not run.overran
    assert run.returncode == 0, run.stderr_tail
    records = read_request_log(run.request_log)
    refused = [r for r in records if r.status == 0]
    assert len(refused) >= 25
    assert all(r.error and not r.instance and not r.ok for r in refused)
    assert any("refused" in r.error.lower() for r in refused)
    # Refusals happened only while the server was away, and the load recovered after it.
    assert all(stopped_at - 0.1 < r.start < restarted_at + 0.1 for r in refused)
    assert any(r.ok and r.start > restarted_at for r in records), "no recovery after restart"


def test_a_server_that_never_answers_times_out_as_status_zero(tmp_path: Path) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(512)  # accepts into the backlog, never reads or answers
        port = silent.getsockname()[1]
        run = run_load(f"http://127.0.0.1:{port}", 20, 2, 10, 0.5, tmp_path)

    assert run.ok, run.stderr_tail
    records = read_request_log(run.request_log)
    assert records
    assert all(r.status == 0 and r.error for r in records)
    assert all(450 <= r.latency_ms <= 1_500 for r in records)


@pytest.mark.parametrize("url", ["http://93.184.216.34:80", "http://example.com", "http://[::]:80"])
def test_non_loopback_urls_are_refused_before_any_load(url: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="loopback") as caught:
        run_load(url, rate=10, duration_s=1, users=1, timeout_s=1, out_dir=tmp_path / "out")
    assert caught.value.exit_code == 2
    assert not (tmp_path / "out").exists()


def test_two_workers_log_every_request_once_in_one_request_log(tmp_path: Path) -> None:
    numbered = _Server(_NumberingHandler)
    numbered.start()
    try:
        run = run_load(numbered.url, 100, 5, users=20, timeout_s=2, out_dir=tmp_path, workers=2)
    finally:
        numbered.stop()

    assert run.ok, run.stderr_tail
    assert [path.name for path in tmp_path.glob("requests*.csv")] == ["requests.csv"]
    names = [record.instance for record in read_request_log(run.request_log)]
    assert len(names) == len(set(names)) > 300
    assert set(names) == set(_NumberingHandler.served)
    # Both workers sent their share: one alone would hold only half the users, half the rate.
    measured = availability_of_logs([run.request_log], target_rate=100)
    assert measured.sent >= 0.9 * 100 * measured.seconds, [r.sent for r in measured.per_second]


def _gone(pid: int) -> bool:
    """No such process, or only its zombie (its parent died; nobody reaps it here)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def test_distributed_locust_quits_when_its_orchestrator_is_killed(
    server: _Server, tmp_path: Path
) -> None:
    script = (
        "import sys, time\n"
        "from cautious.measure.load import start_load\n"
        f"handle = start_load({server.url!r}, 20, 120, 4, 1, {str(tmp_path)!r}, workers=2)\n"
        "print(*[process.popen.pid for process in handle._processes()], flush=True)\n"
        "time.sleep(120)\n"
    )
    orchestrator = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    try:
        assert orchestrator.stdout is not None
        pids = [int(pid) for pid in orchestrator.stdout.readline().split()]
        assert len(pids) == 3, "the orchestrator did not start a master and two workers"
        log = tmp_path / "requests.csv"
        _until(lambda: log.is_file() and log.read_text().count("\n") > 10, within_s=40)
    finally:
        orchestrator.kill()
        orchestrator.wait(timeout=10)
    _until(lambda: all(_gone(pid) for pid in pids), within_s=15)


def _until(done: Callable[[], bool], within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while not done():
        if time.monotonic() >= deadline:
            pytest.fail(f"not so within {within_s} s")
        time.sleep(0.2)
