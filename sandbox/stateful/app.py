"""The stateful sample service: users in PostgreSQL, for deploys that change a schema.

A three-legged schema change renames the column ``users.name`` to ``users.full_name`` without
downtime. The releases differ only in which columns they write and which one they read:

- ``v1``: writes and reads ``name``;
- ``v2-expand``: writes ``name`` and ``full_name`` (double write), reads ``name``;
- ``v2-migrate``: writes both, reads ``full_name`` (safe beside v2-expand: both columns stay
  written, so either reader finds every write);
- ``v2``: writes and reads ``full_name`` only (the old column can then be dropped).

Writes are ``PUT /users/<id>`` with an id the client made up, so a client can later check that
every write it saw acknowledged is still there (``hooks.py check``). Every response names the
instance and release that served it (``X-Instance`` / ``X-Release``).

Standard library plus psycopg2 (Debian's python3-psycopg2); the connection comes from libpq's
own variables (``PGHOST``, ``PGUSER``, ``PGPASSWORD``, ``PGDATABASE``).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import sys
import threading
import time
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg2
import psycopg2.extensions
import psycopg2.pool

__all__ = ["COLUMNS", "Config", "ConfigError", "ensure_table", "main"]

COLUMNS = ("name", "full_name")
EXIT_BAD_CONFIG = 2
MAX_BODY_BYTES = 64 * 1024
MAX_NAME_CHARS = 200
LIST_DEFAULT, LIST_MAX = 20, 100
_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_USER_PATH = re.compile(r"^/users/([^/]+)$")
# A statement that waits on a lock longer than this answers 503 rather than pinning a thread.
_STATEMENT_TIMEOUT_MS = 5_000
_READINESS_EVERY_S = 0.25
_READINESS_STALE_S = 3.0
_TABLE_LOCK = 727_001  # advisory lock key: instances starting together create the table once


class ConfigError(ValueError):
    """A knob has a value the service cannot honour; the process exits 2 naming it."""


@dataclass(frozen=True)
class Config:
    """Every knob, read once from the environment."""

    host: str = "0.0.0.0"
    port: int = 8000
    instance: str = "localhost"
    release: str = "dev"
    write_columns: tuple[str, ...] = ("name",)
    read_column: str = "name"
    ascii_names: bool = False
    pool_size: int = 8

    @classmethod
    def from_env(cls, env: dict[str, str]) -> Config:
        writes = tuple(
            part.strip() for part in env.get("APP_WRITE_COLUMNS", "name").split(",") if part
        )
        read = env.get("APP_READ_COLUMN", "name").strip()
        if not writes or any(column not in COLUMNS for column in writes):
            raise ConfigError(f"APP_WRITE_COLUMNS={writes!r}: use name, full_name or both")
        if read not in COLUMNS:
            raise ConfigError(f"APP_READ_COLUMN={read!r}: use name or full_name")
        try:
            port = int(env.get("APP_PORT", "8000"))
            pool_size = int(env.get("APP_POOL_SIZE", "8"))
        except ValueError as exc:
            raise ConfigError(f"APP_PORT / APP_POOL_SIZE: {exc}") from None
        if not 0 <= port <= 65535 or not 1 <= pool_size <= 100:
            raise ConfigError("APP_PORT must be 0..65535 and APP_POOL_SIZE 1..100")
        return cls(
            host=env.get("APP_HOST", "").strip() or "0.0.0.0",
            port=port,
            instance=env.get("CAUTIOUS_INSTANCE", "").strip() or socket.gethostname(),
            release=env.get("CAUTIOUS_RELEASE", "").strip() or "dev",
            write_columns=writes,
            read_column=read,
            ascii_names=env.get("APP_ASCII_NAMES", "").strip().lower() in {"1", "true", "yes"},
            pool_size=pool_size,
        )


def connect() -> psycopg2.extensions.connection:
    """One connection from libpq's environment, with a statement timeout."""
    return psycopg2.connect("", options=f"-c statement_timeout={_STATEMENT_TIMEOUT_MS}")


def ensure_table(cursor: psycopg2.extensions.cursor) -> None:
    """Create the baseline table (v1's schema) if it does not exist yet.

    ``CREATE TABLE IF NOT EXISTS`` alone races when instances start together; the advisory
    lock makes them take turns. Later columns are the hooks' business, never the app's.
    """
    cursor.execute("SELECT pg_advisory_xact_lock(%s)", (_TABLE_LOCK,))
    cursor.execute(
        "CREATE TABLE IF NOT EXISTS users ("
        " id text PRIMARY KEY, name text, written bigserial, updated timestamptz DEFAULT now())"
    )


def fold_to_ascii(text: str) -> str:
    """ "Zoë" → "Zoe": the subtle release's encoding bug (only names with accents change)."""
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


class Store:
    """The users table as this release sees it (which columns it writes and reads)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._pool: psycopg2.pool.ThreadedConnectionPool | None = None
        self._pool_lock = threading.Lock()
        # psycopg2's pool raises when it is exhausted; requests wait for a connection instead.
        self._free = threading.BoundedSemaphore(config.pool_size)

    @contextmanager
    def cursor(self) -> Iterator[psycopg2.extensions.cursor]:
        """A cursor in a transaction; a broken connection is closed, not returned to the pool."""
        if not self._free.acquire(timeout=_STATEMENT_TIMEOUT_MS / 1000):
            raise psycopg2.OperationalError("no free database connection")
        try:
            with self._pool_lock:
                if self._pool is None:
                    # minconn = maxconn: psycopg2 closes a returned connection beyond minconn,
                    # and a new connection per request (SCRAM authentication) costs ~100 ms.
                    self._pool = psycopg2.pool.ThreadedConnectionPool(
                        self.config.pool_size,
                        self.config.pool_size,
                        "",
                        options=f"-c statement_timeout={_STATEMENT_TIMEOUT_MS}",
                    )
                pool = self._pool
            conn = pool.getconn()
            broken = False
            try:
                with conn, conn.cursor() as cur:
                    yield cur
            except psycopg2.OperationalError:
                broken = True
                raise
            finally:
                pool.putconn(conn, close=broken or conn.closed != 0)
        finally:
            self._free.release()

    def schema_problem(self, probe: psycopg2.extensions.connection) -> str | None:
        """Why this release cannot serve (the database, a missing column), or None."""
        columns = sorted({*self.config.write_columns, self.config.read_column})
        try:
            with probe.cursor() as cur:
                cur.execute(f"SELECT id, {', '.join(columns)} FROM users LIMIT 0")
        except psycopg2.ProgrammingError as exc:  # a missing table or column; a lost
            # connection (OperationalError) goes to the caller, which reconnects
            return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return None

    def put(self, user_id: str, name: str) -> bool:
        """Insert or overwrite; True when the row is new. One statement: double writes are
        atomic, so no reader ever sees the two columns disagree."""
        columns = self.config.write_columns
        assignments = ", ".join(f"{column} = EXCLUDED.{column}" for column in columns)
        with self.cursor() as cur:
            cur.execute(
                f"INSERT INTO users (id, {', '.join(columns)}) "
                f"VALUES (%s{', %s' * len(columns)}) "
                f"ON CONFLICT (id) DO UPDATE SET {assignments}, updated = now() "
                "RETURNING (xmax = 0)",
                (user_id, *([name] * len(columns))),
            )
            row = cur.fetchone()
        return bool(row and row[0])

    def get(self, user_id: str) -> dict[str, Any] | None:
        with self.cursor() as cur:
            cur.execute(
                f"SELECT id, {self.config.read_column} FROM users WHERE id = %s", (user_id,)
            )
            row = cur.fetchone()
        if row is None:
            return None
        name = row[1]
        if name is not None and self.config.ascii_names:
            name = fold_to_ascii(name)
        return {"id": row[0], "name": name}

    def newest(self, limit: int) -> list[dict[str, Any]]:
        with self.cursor() as cur:
            cur.execute(
                f"SELECT id, {self.config.read_column} FROM users ORDER BY written DESC LIMIT %s",
                (limit,),
            )
            return [{"id": row[0], "name": row[1]} for row in cur.fetchall()]


class Server(ThreadingHTTPServer):
    """Thread per request; non-daemon threads and block_on_close, so a drain lets every
    accepted request finish before the process exits."""

    daemon_threads = False
    block_on_close = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], store: Store) -> None:
        self.store = store
        self.draining = threading.Event()
        # (why not ready or None, when checked): the main loop checks, /ready only reads, so a
        # busy database never makes a health check slow enough to take the instance down
        self.readiness: tuple[str | None, float] = ("starting", time.monotonic())
        super().__init__(address, Handler)


class Handler(BaseHTTPRequestHandler):
    """Routes requests; HTTP/1.0 (one request per connection) keeps draining simple."""

    protocol_version = "HTTP/1.0"
    server_version = "cautious-stateful"
    timeout = 30

    @property
    def app(self) -> Server:
        assert isinstance(self.server, Server)
        return self.server

    def send_response(self, code: int, message: str | None = None) -> None:
        super().send_response(code, message)
        config = self.app.store.config
        self.send_header("X-Instance", config.instance)
        self.send_header("X-Release", config.release)

    def _json(self, status: HTTPStatus, body: Any, headers: dict[str, str] | None = None) -> None:
        payload = (json.dumps(body, ensure_ascii=False) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Connection", "close")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _error(self, status: HTTPStatus, error: str, headers: dict[str, str] | None = None) -> None:
        self._json(status, {"error": error, "status": int(status)}, headers)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """No access log: at load-test rates it would drown the useful lines."""

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write(f"event=http_error client={self.client_address[0]} {format % args}\n")

    def do_GET(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def _body(self) -> bytes | None:
        """Read the whole body before answering (unread bytes make the kernel send a reset)."""
        raw = self.headers.get("Content-Length", "")
        if not raw.isdigit():
            return None
        return self.rfile.read(min(int(raw), MAX_BODY_BYTES))

    def _dispatch(self) -> None:
        body = self._body()
        url = urlsplit(self.path)
        reading = self.command in {"GET", "HEAD"}
        try:
            if url.path == "/ready" and reading:
                self._ready()
            elif url.path == "/healthz" and reading:
                self._json(HTTPStatus.OK, {"live": True})
            elif url.path == "/" and reading:
                config = self.app.store.config
                self._json(
                    HTTPStatus.OK,
                    {"service": "stateful", "instance": config.instance, "release": config.release},
                )
            elif url.path == "/users" and reading:
                self._list(url.query)
            elif (match := _USER_PATH.match(url.path)) and (reading or self.command == "PUT"):
                self._user(match.group(1), body)
            else:
                self._error(HTTPStatus.NOT_FOUND, f"no route for {self.command} {url.path}")
        except psycopg2.Error as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            self._error(HTTPStatus.SERVICE_UNAVAILABLE, f"database: {reason}", {"Retry-After": "1"})

    def _ready(self) -> None:
        """Ready when not draining and the last check (at most 3 s ago) found the database
        answering and every column this release touches."""
        problem, checked = self.app.readiness
        if self.app.draining.is_set():
            problem = "draining"
        elif problem is None and time.monotonic() - checked > _READINESS_STALE_S:
            problem = "readiness check overdue"
        if problem is not None:
            self._json(HTTPStatus.SERVICE_UNAVAILABLE, {"ready": False, "phase": problem})
            return
        self._json(HTTPStatus.OK, {"ready": True, "phase": "ready"})

    def _list(self, query: str) -> None:
        raw = parse_qs(query).get("limit", [str(LIST_DEFAULT)])[-1]
        if not raw.isdigit() or not 1 <= int(raw) <= LIST_MAX:
            self._error(HTTPStatus.BAD_REQUEST, f"limit must be 1..{LIST_MAX}")
            return
        self._json(HTTPStatus.OK, {"users": self.app.store.newest(int(raw))})

    def _user(self, user_id: str, body: bytes | None) -> None:
        if not _ID_PATTERN.match(user_id):
            self._error(HTTPStatus.BAD_REQUEST, "an id is 1-64 letters, digits, '-' or '_'")
            return
        if self.command != "PUT":
            user = self.app.store.get(user_id)
            if user is None:
                self._error(HTTPStatus.NOT_FOUND, f"no user {user_id}")
            else:
                self._json(HTTPStatus.OK, user)
            return
        name = _name_from(body)
        if name is None:
            self._error(HTTPStatus.BAD_REQUEST, 'body must be JSON {"name": "<1-200 chars>"}')
            return
        created = self.app.store.put(user_id, name)
        status = HTTPStatus.CREATED if created else HTTPStatus.OK
        self._json(status, {"id": user_id, "name": name})


def _name_from(body: bytes | None) -> str | None:
    try:
        document = json.loads(body or b"")
    except (ValueError, UnicodeDecodeError):
        return None
    name = document.get("name") if isinstance(document, dict) else None
    if not isinstance(name, str) or not 1 <= len(name) <= MAX_NAME_CHARS:
        return None
    return name


def log(message: str) -> None:
    print(message, flush=True)


def run(config: Config) -> int:
    """Create the table if needed, serve until SIGTERM, then drain and exit 0."""
    store = Store(config)
    try:
        server = Server((config.host, config.port), store)
    except OSError as exc:
        sys.stderr.write(f"cannot listen on {config.host}:{config.port}: {exc}\n")
        return EXIT_BAD_CONFIG
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        server.draining.set()
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    log(
        f"instance={config.instance} release={config.release} "
        f"writes={','.join(config.write_columns)} reads={config.read_column} "
        f"listening={server.server_address[0]}:{server.server_address[1]}"
    )
    table_ready = False
    probe: psycopg2.extensions.connection | None = None
    while not stop.wait(_READINESS_EVERY_S):
        if not table_ready:
            table_ready = _try_ensure_table(store)
            continue
        try:
            if probe is None or probe.closed:
                probe = connect()
                probe.autocommit = True
            server.readiness = (store.schema_problem(probe), time.monotonic())
        except psycopg2.Error as exc:
            server.readiness = (str(exc).strip().splitlines()[:1] or ["database"])[0], 0.0
            probe = None
    log("event=draining")
    server.shutdown()
    server.server_close()  # joins the request threads: accepted requests finish first
    log("event=stopped")
    return 0


def _try_ensure_table(store: Store) -> bool:
    """The database may start after us: try, and say so once it worked."""
    try:
        with store.cursor() as cur:
            ensure_table(cur)
    except psycopg2.Error as exc:
        log(f"event=waiting_for_database error={str(exc).strip().splitlines()[:1]}")
        return False
    log("event=table_ready")
    return True


def main() -> int:
    try:
        config = Config.from_env(dict(os.environ))
    except ConfigError as exc:
        sys.stderr.write(f"bad configuration: {exc}\n")
        return EXIT_BAD_CONFIG
    return run(config)


if __name__ == "__main__":
    sys.exit(main())
