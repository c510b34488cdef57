"""The sandbox's sample service: a small HTTP service that behaves like a real one.

Cautious rolls this service out across the sandbox cluster while Locust drives load, so it
needs the properties that make real rollouts hard: a stochastic start-up, a
readiness probe that lies until start-up is done, graceful draining on SIGTERM, and knobs
that turn a good release into a bad one (errors, latency, crashes, turning unhealthy).
Every response names the instance and release that served it (``X-Instance`` /
``X-Release``) so the request log can attribute each request.

Standard library only: the container image has python3 and nothing else.
"""

from __future__ import annotations

import json
import math
import os
import random
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any
from urllib.parse import parse_qs, urlsplit

EXIT_CRASH_ON_START = 3
EXIT_BAD_CONFIG = 2
SLOW_CAP_MS = 10_000
MAX_BODY_BYTES = 1 << 20
MAX_ITEMS = 1000
HEALTH_PATHS = frozenset({"/ready", "/healthz"})
ROUTES: dict[str, frozenset[str]] = {
    "/": frozenset({"GET", "HEAD"}),
    "/items": frozenset({"GET", "HEAD", "POST"}),
    "/slow": frozenset({"GET", "HEAD"}),
    "/ready": frozenset({"GET", "HEAD"}),
    "/healthz": frozenset({"GET", "HEAD"}),
}


class ConfigError(ValueError):
    """A knob has a value the service cannot honour; the process exits 2 naming it."""


def _env_float(env: dict[str, str], name: str, default: float, minimum: float = 0.0) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    if not math.isfinite(value) or value < minimum:
        raise ConfigError(f"{name}={raw!r} must be a finite number >= {minimum:g}")
    return value


def _env_optional_float(env: dict[str, str], name: str) -> float | None:
    if not env.get(name, "").strip():
        return None
    return _env_float(env, name, 0.0)


def _env_int(env: dict[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer") from None
    if not lo <= value <= hi:
        raise ConfigError(f"{name}={raw!r} must be between {lo} and {hi}")
    return value


def _env_flag(env: dict[str, str], name: str) -> bool:
    return env.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Config:
    """Every knob, read once from the environment so behaviour cannot drift mid-run."""

    host: str = "0.0.0.0"
    port: int = 8000
    instance: str = "localhost"
    release: str = "dev"
    greeting: str = "hello"
    startup_median_s: float = 0.5
    startup_sigma: float = 0.4
    startup_seed: int | None = None
    crash_on_start: bool = False
    error_rate: float = 0.0
    added_latency_s: float = 0.0
    unhealthy_after_s: float | None = None
    shutdown_delay_s: float = 0.0
    shutdown_timeout_s: float = 10.0

    @classmethod
    def from_env(cls, env: dict[str, str]) -> Config:
        """Parse the knobs; raise ConfigError with the offending variable on bad input."""
        seed_raw = env.get("APP_STARTUP_SEED", "").strip()
        try:
            seed = int(seed_raw) if seed_raw else None
        except ValueError:
            raise ConfigError(f"APP_STARTUP_SEED={seed_raw!r} is not an integer") from None
        error_rate = _env_float(env, "APP_ERROR_RATE", 0.0)
        if error_rate > 1.0:
            raise ConfigError(f"APP_ERROR_RATE={error_rate:g} must be between 0 and 1")
        return cls(
            host=env.get("APP_HOST", "").strip() or "0.0.0.0",
            port=_env_int(env, "APP_PORT", 8000, 0, 65535),
            instance=env.get("CAUTIOUS_INSTANCE", "").strip() or socket.gethostname(),
            release=env.get("CAUTIOUS_RELEASE", "").strip() or "dev",
            greeting=env.get("APP_GREETING", "hello"),
            startup_median_s=_env_float(env, "APP_STARTUP_MEDIAN_S", 0.5),
            startup_sigma=_env_float(env, "APP_STARTUP_SIGMA", 0.4),
            startup_seed=seed,
            crash_on_start=_env_flag(env, "APP_CRASH_ON_START"),
            error_rate=error_rate,
            added_latency_s=_env_float(env, "APP_ADDED_LATENCY_MS", 0.0) / 1000.0,
            unhealthy_after_s=_env_optional_float(env, "APP_UNHEALTHY_AFTER_S"),
            shutdown_delay_s=_env_float(env, "APP_SHUTDOWN_DELAY_S", 0.0),
            shutdown_timeout_s=_env_float(env, "APP_SHUTDOWN_TIMEOUT_S", 10.0),
        )


def draw_startup_s(median_s: float, sigma: float, seed: int | None) -> float:
    """Draw a start-up time from a lognormal: start-up is stochastic and right-skewed.

    The lognormal keeps times positive with a long tail, the shape real start-ups have
    (the slowest instance defines the rollout). sigma 0 means exactly the median.
    """
    if sigma == 0.0 or median_s == 0.0:
        return median_s
    return random.Random(seed).lognormvariate(math.log(median_s), sigma)


@dataclass
class AppState:
    """Mutable state shared by the handler threads and the main thread."""

    config: Config
    startup_s: float
    started_at: float = field(default_factory=time.monotonic)
    draining: threading.Event = field(default_factory=threading.Event)
    items: list[Any] = field(default_factory=list)
    next_item_id: int = 1
    items_lock: threading.Lock = field(default_factory=threading.Lock)
    error_rng: random.Random = field(default_factory=random.Random)

    def elapsed_s(self) -> float:
        return time.monotonic() - self.started_at

    def started(self) -> bool:
        """Start-up done; a process configured to crash on start never gets there."""
        return not self.config.crash_on_start and self.elapsed_s() >= self.startup_s

    def unhealthy(self) -> bool:
        after = self.config.unhealthy_after_s
        return after is not None and self.elapsed_s() >= after

    def phase(self) -> str:
        """One word for logs and health bodies; the order is the precedence."""
        if self.unhealthy():
            return "unhealthy"
        if self.draining.is_set():
            return "draining"
        if not self.started():
            return "starting"
        return "ready"

    def add_item(self, item: Any) -> int:
        """Store in memory; keep only the newest MAX_ITEMS so long load runs stay bounded."""
        with self.items_lock:
            item_id = self.next_item_id
            self.next_item_id += 1
            self.items.append(item)
            del self.items[:-MAX_ITEMS]
            return item_id

    def list_items(self) -> list[Any]:
        with self.items_lock:
            return list(self.items)


class AppServer(ThreadingHTTPServer):
    """Thread per request, with an in-flight count so shutdown can wait for the stragglers.

    Non-daemon threads so an exiting interpreter never cuts a response short; the count is
    taken in the accepting thread, before the handler thread exists, so a request accepted
    just before shutdown is never missed.
    """

    daemon_threads = False
    block_on_close = False  # we wait ourselves, bounded by APP_SHUTDOWN_TIMEOUT_S
    request_queue_size = 128  # one connection per request under load: a deep backlog helps

    def __init__(self, address: tuple[str, int], state: AppState) -> None:
        self.state = state
        self._in_flight = 0
        self._idle = threading.Condition()
        super().__init__(address, Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._idle:
            self._in_flight += 1
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._done()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._done()

    def _done(self) -> None:
        with self._idle:
            self._in_flight -= 1
            self._idle.notify_all()

    def in_flight(self) -> int:
        with self._idle:
            return self._in_flight

    def wait_idle(self, timeout_s: float) -> int:
        """Wait until no request is in flight or the timeout passes; return what is left."""
        deadline = time.monotonic() + timeout_s
        with self._idle:
            while self._in_flight > 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._idle.wait(remaining)
            return self._in_flight


class Handler(BaseHTTPRequestHandler):
    """Routes requests; HTTP/1.0 (one request per connection) keeps draining simple."""

    protocol_version = "HTTP/1.0"
    server_version = "cautious-sample"
    timeout = 30  # a client that never sends its request must not pin a thread forever

    @property
    def app(self) -> AppServer:
        assert isinstance(self.server, AppServer)
        return self.server

    # -- responses ------------------------------------------------------------------------

    def send_response(self, code: int, message: str | None = None) -> None:
        """Every response, errors from the base class included, names instance and release."""
        super().send_response(code, message)
        config = self.app.state.config
        self.send_header("X-Instance", config.instance)
        self.send_header("X-Release", config.release)

    def _send_json(
        self, status: HTTPStatus, body: Any, headers: dict[str, str] | None = None
    ) -> None:
        payload = (json.dumps(body) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Connection", "close")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _send_error_json(
        self, status: HTTPStatus, error: str, headers: dict[str, str] | None = None
    ) -> None:
        self._send_json(status, {"error": error, "status": int(status)}, headers)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """No per-request access log: at load-test rates it would drown the useful lines."""

    def log_message(self, format: str, *args: Any) -> None:
        """Keep protocol errors (bad request lines, timeouts) visible, but terse."""
        sys.stderr.write(f"event=http_error client={self.client_address[0]} {format % args}\n")

    # -- dispatch -------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def _read_body(self) -> bytes | None:
        """Read the whole request body before answering, whatever the answer.

        Closing a socket with unread request bytes makes the kernel send a reset, and the
        client may then see a connection error instead of our 503 or 500: the request log
        would blame the wrong thing. None means there was no usable Content-Length.
        """
        raw = self.headers.get("Content-Length")
        try:
            length = int(raw) if raw is not None else -1
        except ValueError:
            length = -1
        if length < 0:
            return None
        return self.rfile.read(min(length, MAX_BODY_BYTES))

    def _dispatch(self) -> None:
        length_raw = self.headers.get("Content-Length", "0")
        if length_raw.isdigit() and int(length_raw) > MAX_BODY_BYTES:
            self._send_error_json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "body too large")
            return
        body = self._read_body()
        url = urlsplit(self.path)
        path = url.path
        allowed = ROUTES.get(path)
        if path in HEALTH_PATHS:
            if self.command not in ROUTES[path]:
                self._method_not_allowed(ROUTES[path])
            elif path == "/ready":
                self._ready()
            else:
                self._healthz()
            return

        state = self.app.state
        if state.config.added_latency_s > 0:
            time.sleep(state.config.added_latency_s)
        if allowed is None:
            self._send_error_json(HTTPStatus.NOT_FOUND, f"no route for {path}")
            return
        if self.command not in allowed:
            self._method_not_allowed(allowed)
            return
        if not state.started():
            self._send_error_json(HTTPStatus.SERVICE_UNAVAILABLE, "starting", {"Retry-After": "1"})
            return
        if state.config.error_rate > 0 and state.error_rng.random() < state.config.error_rate:
            self._send_error_json(HTTPStatus.INTERNAL_SERVER_ERROR, "injected error")
            return
        if path == "/":
            self._root()
        elif path == "/items":
            if self.command == "POST":
                self._create_item(body)
            else:
                self._send_json(HTTPStatus.OK, state.list_items())
        else:
            self._slow(url.query)

    def _method_not_allowed(self, allowed: frozenset[str]) -> None:
        self._send_error_json(
            HTTPStatus.METHOD_NOT_ALLOWED,
            f"{self.command} not allowed",
            {"Allow": ", ".join(sorted(allowed))},
        )

    # -- endpoints ------------------------------------------------------------------------

    def _ready(self) -> None:
        """Readiness: may this instance get traffic? No while starting, draining, unhealthy."""
        phase = self.app.state.phase()
        ok = phase == "ready"
        status = HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE
        self._send_json(status, {"ready": ok, "phase": phase})

    def _healthz(self) -> None:
        """Liveness: is the process worth keeping? Yes unless it turned unhealthy.

        The in-flight count (excluding this probe) lets a drain be watched from outside.
        """
        state = self.app.state
        live = not state.unhealthy()
        status = HTTPStatus.OK if live else HTTPStatus.SERVICE_UNAVAILABLE
        body = {"live": live, "phase": state.phase(), "in_flight": self.app.in_flight() - 1}
        self._send_json(status, body)

    def _root(self) -> None:
        config = self.app.state.config
        self._send_json(
            HTTPStatus.OK,
            {"greeting": config.greeting, "instance": config.instance, "release": config.release},
        )

    def _create_item(self, body: bytes | None) -> None:
        """A write: the request class that read-only mode must refuse during a rollout."""
        if body is None:
            self._send_error_json(HTTPStatus.LENGTH_REQUIRED, "Content-Length required")
            return
        try:
            item = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            self._send_error_json(HTTPStatus.BAD_REQUEST, "body must be JSON")
            return
        item_id = self.app.state.add_item(item)
        self._send_json(HTTPStatus.CREATED, {"id": item_id, "item": item})

    def _slow(self, query: str) -> None:
        """Slow work that keeps a request in flight, to prove draining waits for it."""
        values = parse_qs(query).get("ms", ["0"])
        try:
            ms = int(values[-1])
        except ValueError:
            ms = -1
        if ms < 0:
            self._send_error_json(HTTPStatus.BAD_REQUEST, "ms must be a non-negative integer")
            return
        ms = min(ms, SLOW_CAP_MS)
        time.sleep(ms / 1000.0)
        self._send_json(HTTPStatus.OK, {"slept_ms": ms})


def log(message: str) -> None:
    """One key=value line to stdout; unbuffered so `docker logs` shows it at once."""
    print(message, flush=True)


def run(config: Config) -> int:
    """Serve until SIGTERM/SIGINT, then drain; return the exit code."""
    startup_s = draw_startup_s(config.startup_median_s, config.startup_sigma, config.startup_seed)
    state = AppState(config=config, startup_s=startup_s)
    try:
        server = AppServer((config.host, config.port), state)
    except OSError as exc:
        sys.stderr.write(f"cannot listen on {config.host}:{config.port}: {exc}\n")
        return EXIT_BAD_CONFIG
    host, port = server.server_address[:2]
    log(
        f"startup_s={startup_s:.3f} instance={config.instance} release={config.release} "
        f"listening={host!s}:{port}"
    )

    stop = threading.Event()
    hurry = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        """First signal: drain. A second one skips the shutdown delay."""
        if stop.is_set():
            hurry.set()
            return
        state.draining.set()
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    serving = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="serve", daemon=True
    )
    serving.start()

    crash_at = min(startup_s, 0.5)
    announced_ready = False
    # Short waits keep the main thread responsive to signals and the crash deadline.
    while not stop.wait(0.05):
        elapsed = state.elapsed_s()
        if config.crash_on_start and elapsed >= crash_at:
            log(f"event=crash elapsed_s={elapsed:.3f} exit={EXIT_CRASH_ON_START}")
            sys.stderr.flush()
            os._exit(EXIT_CRASH_ON_START)  # a crash, not a shutdown: no cleanup on purpose
        if not announced_ready and state.started():
            announced_ready = True
            log(f"event=ready elapsed_s={elapsed:.3f}")

    log(f"event=draining delay_s={config.shutdown_delay_s:g} in_flight={server.in_flight()}")
    if config.shutdown_delay_s > 0:
        hurry.wait(config.shutdown_delay_s)
    server.shutdown()  # stop accepting: the serve loop exits, the listening socket closes next
    server.server_close()
    left = server.wait_idle(config.shutdown_timeout_s)
    if left:
        log(f"event=stopped abandoned={left} timeout_s={config.shutdown_timeout_s:g}")
        sys.stderr.flush()
        os._exit(0)  # non-daemon handler threads would otherwise keep the process alive
    log("event=stopped abandoned=0")
    return 0


def main() -> int:
    try:
        config = Config.from_env(dict(os.environ))
    except ConfigError as exc:
        sys.stderr.write(f"bad configuration: {exc}\n")
        return EXIT_BAD_CONFIG
    return run(config)


if __name__ == "__main__":
    sys.exit(main())
