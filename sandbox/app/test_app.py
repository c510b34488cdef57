"""Tests of the sample service, run as a real process and spoken to over real HTTP.

The service is what every rollout, load test and chaos experiment stands on, so these tests
check the behaviour the rest of Cautious relies on: attribution headers, honest readiness,
the fault knobs, and draining on SIGTERM without dropping an in-flight request.
Every wait is a poll with a deadline; every started process is killed by the fixture.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

APP = Path(__file__).with_name("app.py")
# Talk to 127.0.0.1 directly even if the environment sets an HTTP proxy.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
QUICK = {"APP_STARTUP_MEDIAN_S": "0", "APP_STARTUP_SIGMA": "0"}
# How a request ends when the process dies under it: a refused or reset connection (OSError), or
# a response cut short (http.client.IncompleteRead and friends, which are not OSErrors).
CUT_OFF = (OSError, http.client.HTTPException)


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float

    def json(self) -> Any:
        return json.loads(self.body)


def poll(check: Callable[[], bool], timeout_s: float, interval_s: float = 0.02) -> bool:
    """Call check until it is true or the deadline passes; bounded in time and count."""
    deadline = time.monotonic() + timeout_s
    for _ in range(int(timeout_s / interval_s) + 2):
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)
    return False


@dataclass
class App:
    """One running app.py process, its port, and its stdout lines."""

    proc: subprocess.Popen[str]
    started_at: float
    lines: queue.Queue[str] = field(default_factory=queue.Queue)
    seen: list[str] = field(default_factory=list)
    port: int = 0

    def next_line(self, timeout_s: float) -> str | None:
        try:
            line = self.lines.get(timeout=timeout_s)
        except queue.Empty:
            return None
        self.seen.append(line)
        return line

    def wait_for_line(self, prefix: str, timeout_s: float = 5.0) -> str:
        deadline = time.monotonic() + timeout_s
        for seen in self.seen:
            if seen.startswith(prefix):
                return seen
        for _ in range(1000):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            line = self.next_line(remaining)
            if line is not None and line.startswith(prefix):
                return line
        raise AssertionError(f"no stdout line starting {prefix!r}; saw {self.seen!r}")

    def request(
        self, path: str, method: str = "GET", body: Any = None, timeout_s: float = 5.0
    ) -> Response:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        t0 = time.monotonic()
        try:
            with OPENER.open(req, timeout=timeout_s) as resp:
                payload = resp.read()
                return Response(resp.status, dict(resp.headers), payload, time.monotonic() - t0)
        except urllib.error.HTTPError as err:
            payload = err.read()
            return Response(err.code, dict(err.headers), payload, time.monotonic() - t0)

    def wait_exit(self, timeout_s: float) -> int:
        return self.proc.wait(timeout=timeout_s)


@pytest.fixture
def start_app() -> Iterator[Callable[..., App]]:
    """Start app.py on an ephemeral port; kill whatever is still running afterwards."""
    apps: list[App] = []

    def start(wait_listening: bool = True, **env: str) -> App:
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("APP_", "CAUTIOUS_"))}
        clean.update(
            APP_HOST="127.0.0.1", APP_PORT="0", CAUTIOUS_INSTANCE="test-1", CAUTIOUS_RELEASE="v7"
        )
        clean.update(env)
        proc = subprocess.Popen(
            [sys.executable, "-u", str(APP)],
            env=clean,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        app = App(proc=proc, started_at=time.monotonic())
        apps.append(app)

        def pump() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                app.lines.put(line.strip())

        threading.Thread(target=pump, daemon=True).start()
        if wait_listening:
            line = app.wait_for_line("startup_s=")
            app.port = int(line.rsplit(":", 1)[1])
        return app

    yield start
    for app in apps:
        if app.proc.poll() is None:
            app.proc.kill()
        app.proc.wait(timeout=5)


def in_background(
    fn: Callable[[], Response],
) -> tuple[threading.Thread, list[Response | Exception]]:
    """Run a request in a thread; keep its response, or the error that cut it off."""
    out: list[Response | Exception] = []

    def run() -> None:
        try:
            out.append(fn())
        except CUT_OFF as exc:
            out.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def test_every_endpoint_carries_instance_and_release_headers(start_app: Callable[..., App]) -> None:
    app = start_app(**QUICK)
    assert poll(lambda: app.request("/ready").status == 200, 5)
    responses = [
        app.request("/"),
        app.request("/items"),
        app.request("/items", "POST", {"n": 1}),
        app.request("/slow?ms=1"),
        app.request("/ready"),
        app.request("/healthz"),
        app.request("/nowhere"),
        app.request("/items", "DELETE"),
        app.request("/slow?ms=soon"),
        app.request("/", "HEAD"),
    ]
    assert [r.status for r in responses] == [200, 200, 201, 200, 200, 200, 404, 405, 400, 200]
    for r in responses:
        assert (r.headers.get("X-Instance"), r.headers.get("X-Release")) == ("test-1", "v7")
    assert responses[0].json() == {"greeting": "hello", "instance": "test-1", "release": "v7"}


def test_readiness_fails_until_startup_completes(start_app: Callable[..., App]) -> None:
    app = start_app(APP_STARTUP_MEDIAN_S="1.0", APP_STARTUP_SIGMA="0")
    assert app.seen[0].startswith("startup_s=1.000 ")
    early = [
        app.request("/ready"),
        app.request("/"),
        app.request("/items", "POST", {"too": "early"}),
        app.request("/healthz"),
    ]
    assert [r.status for r in early] == [503, 503, 503, 200]
    assert all(r.headers.get("X-Release") == "v7" for r in early)
    assert poll(lambda: app.request("/ready").status == 200, 5)
    assert time.monotonic() - app.started_at >= 1.0
    assert app.request("/").status == 200


def test_startup_time_is_lognormal_and_repeatable_with_a_seed(
    start_app: Callable[..., App],
) -> None:
    knobs = {"APP_STARTUP_MEDIAN_S": "0.5", "APP_STARTUP_SIGMA": "0.4", "APP_STARTUP_SEED": "42"}
    first = start_app(**knobs).seen[0].split()[0]
    second = start_app(**knobs).seen[0].split()[0]
    other = start_app(**{**knobs, "APP_STARTUP_SEED": "43"}).seen[0].split()[0]
    assert first == second != other
    assert float(first.split("=")[1]) > 0


def test_posted_items_are_listed_afterwards(start_app: Callable[..., App]) -> None:
    app = start_app(**QUICK)
    assert poll(lambda: app.request("/ready").status == 200, 5)
    assert app.request("/items").json() == []
    created = app.request("/items", "POST", {"name": "first"})
    assert created.status == 201
    assert created.json() == {"id": 1, "item": {"name": "first"}}
    app.request("/items", "POST", [2, 3])
    assert app.request("/items").json() == [{"name": "first"}, [2, 3]]


def test_malformed_json_is_refused_with_400(start_app: Callable[..., App]) -> None:
    app = start_app(**QUICK)
    assert poll(lambda: app.request("/ready").status == 200, 5)
    req = urllib.request.Request(f"http://127.0.0.1:{app.port}/items", b"{not json", method="POST")
    with pytest.raises(urllib.error.HTTPError) as err:
        OPENER.open(req, timeout=5)
    assert err.value.code == 400
    assert app.request("/items").json() == []


def test_error_rate_one_fails_real_endpoints_but_health_stays_green(
    start_app: Callable[..., App],
) -> None:
    app = start_app(APP_ERROR_RATE="1.0", **QUICK)
    assert poll(lambda: app.request("/ready").status == 200, 5)
    for path, method in (("/", "GET"), ("/items", "GET"), ("/items", "POST"), ("/slow", "GET")):
        r = app.request(path, method, {"n": 1} if method == "POST" else None)
        assert r.status == 500, (method, path)
        assert r.headers.get("X-Instance") == "test-1"
    assert app.request("/ready").status == 200
    assert app.request("/healthz").status == 200


def test_added_latency_slows_real_endpoints_but_not_health(
    start_app: Callable[..., App],
) -> None:
    app = start_app(APP_ADDED_LATENCY_MS="400", **QUICK)
    assert poll(lambda: app.request("/ready").status == 200, 5)
    slow = app.request("/")
    assert slow.status == 200
    assert slow.seconds >= 0.4
    assert app.request("/ready").seconds < 0.4


def test_crash_on_start_exits_3_and_never_becomes_ready(start_app: Callable[..., App]) -> None:
    app = start_app(APP_CRASH_ON_START="1", APP_STARTUP_MEDIAN_S="2", APP_STARTUP_SIGMA="0")
    statuses: list[int] = []

    def exited() -> bool:
        with contextlib.suppress(*CUT_OFF):  # the process may go away mid-request
            statuses.append(app.request("/ready", timeout_s=1).status)
        return app.proc.poll() is not None

    assert poll(exited, 5)
    assert app.wait_exit(1) == 3
    assert statuses and set(statuses) == {503}
    # It crashed "partway through start-up": around 0.5 s, well before the 2 s start-up. The
    # app's own clock says when, so a busy machine that starts Python slowly does not matter.
    crash = app.wait_for_line("event=crash")
    assert float(crash.split("elapsed_s=")[1].split()[0]) < 2.0


def test_unhealthy_after_turns_healthz_and_ready_to_503(start_app: Callable[..., App]) -> None:
    app = start_app(APP_UNHEALTHY_AFTER_S="0.6", **QUICK)
    assert poll(lambda: app.request("/ready").status == 200, 5)
    assert app.request("/healthz").status == 200
    assert poll(lambda: app.request("/healthz").status == 503, 5)
    assert time.monotonic() - app.started_at >= 0.6
    assert app.request("/ready").status == 503
    assert app.request("/healthz").json()["phase"] == "unhealthy"


def wait_in_flight(app: App, count: int) -> bool:
    return poll(lambda: app.request("/healthz").json()["in_flight"] >= count, 5)


def test_sigterm_lets_an_in_flight_slow_request_finish_then_exits_0(
    start_app: Callable[..., App],
) -> None:
    app = start_app(**QUICK)
    assert poll(lambda: app.request("/ready").status == 200, 5)
    thread, out = in_background(lambda: app.request("/slow?ms=1500", timeout_s=10))
    assert wait_in_flight(app, 1)
    sent_at = time.monotonic()
    app.proc.send_signal(signal.SIGTERM)
    assert app.wait_exit(8) == 0
    thread.join(5)
    assert out and isinstance(out[0], Response)
    assert out[0].status == 200
    assert out[0].json() == {"slept_ms": 1500}
    assert out[0].headers.get("X-Release") == "v7"
    assert time.monotonic() - sent_at < 5
    app.wait_for_line("event=stopped abandoned=0")


def test_readiness_drops_at_once_on_sigterm_while_the_delay_keeps_serving(
    start_app: Callable[..., App],
) -> None:
    app = start_app(APP_SHUTDOWN_DELAY_S="1.0", **QUICK)
    assert poll(lambda: app.request("/ready").status == 200, 5)
    app.proc.send_signal(signal.SIGTERM)
    sent_at = time.monotonic()
    assert poll(lambda: app.request("/ready").status == 503, 0.5)
    assert app.request("/ready").json() == {"ready": False, "phase": "draining"}
    assert app.request("/").status == 200  # still serving during the delay
    assert time.monotonic() - sent_at < 1.0
    assert app.wait_exit(5) == 0
    assert time.monotonic() - sent_at >= 1.0


def test_sigint_drains_like_sigterm(start_app: Callable[..., App]) -> None:
    app = start_app(**QUICK)
    assert poll(lambda: app.request("/ready").status == 200, 5)
    thread, out = in_background(lambda: app.request("/slow?ms=500", timeout_s=10))
    assert wait_in_flight(app, 1)
    app.proc.send_signal(signal.SIGINT)
    assert app.wait_exit(5) == 0
    thread.join(5)
    assert out and isinstance(out[0], Response) and out[0].status == 200


def test_shutdown_timeout_bounds_the_wait_for_in_flight_requests(
    start_app: Callable[..., App],
) -> None:
    app = start_app(APP_SHUTDOWN_TIMEOUT_S="0.3", **QUICK)
    assert poll(lambda: app.request("/ready").status == 200, 5)
    thread, out = in_background(lambda: app.request("/slow?ms=8000", timeout_s=10))
    assert wait_in_flight(app, 1)
    sent_at = time.monotonic()
    app.proc.send_signal(signal.SIGTERM)
    assert app.wait_exit(5) == 0
    assert time.monotonic() - sent_at < 3
    app.wait_for_line("event=stopped abandoned=1")
    thread.join(5)
    assert out and isinstance(out[0], CUT_OFF)  # cut off: the bound is a promise too


def test_bad_knob_exits_2_with_the_variable_named() -> None:
    proc = subprocess.run(
        [sys.executable, str(APP)],
        env={**os.environ, "APP_ERROR_RATE": "lots"},
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert proc.returncode == 2
    assert "APP_ERROR_RATE" in proc.stderr
