"""HAProxy for the sandbox: its configuration, and a client for its runtime API.

The backend has a fixed pool of server *slots* (``sample-1`` … ``sample-32``) whose addresses
come from Docker's DNS at run time (``init-addr none``: resolving empty slots at start-up would
block HAProxy for many seconds), so the configuration never changes while instances come and
go; a slot without a container does not resolve and stays out of rotation. Rollouts steer traffic
with runtime commands — ``drain``, ``maint``, ``ready``, ``weight`` — and read ``show stat``.
"""

from __future__ import annotations

import csv
import io
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from cautious.config import Config
from cautious.exceptions import SandboxError

__all__ = [
    "BACKEND_NAME",
    "FRONTEND_PORT",
    "MAX_SLOTS",
    "RUNTIME_PORT",
    "AdminState",
    "HAProxyRuntime",
    "ServerStat",
    "render_haproxy_config",
    "slot_names",
]

BACKEND_NAME = "app"
FRONTEND_PORT = 8080
RUNTIME_PORT = 9999
MAX_SLOTS = 32  # twice the largest cluster, so blue-green always finds a free set

AdminState = Literal["ready", "drain", "maint"]
_RETRY_POLL_S = 0.2


def slot_names(service: str, count: int = MAX_SLOTS) -> list[str]:
    """Instance names double as DNS aliases and HAProxy server names: ``sample-1`` …"""
    return [f"{service}-{index}" for index in range(1, count + 1)]


def render_haproxy_config(config: Config) -> str:
    """The sandbox's haproxy.cfg: one frontend, one backend of DNS-resolved slots."""
    lb = config.lb
    service = config.service
    checks = (
        f"check inter {lb.check_interval_ms}ms fastinter {max(100, lb.check_interval_ms // 2)}ms "
        f"rise {lb.rise} fall {lb.fall}"
    )
    servers = "\n".join(
        f"    server {name} {name}:{service.port} {checks}" for name in slot_names(service.name)
    )
    redispatch = "    option redispatch\n" if lb.redispatch else ""
    return f"""# Rendered by Cautious for cluster {config.cluster.name!r}; do not edit.
global
    maxconn 4096
    stats socket ipv4@0.0.0.0:{RUNTIME_PORT} level admin
    stats timeout 30s

resolvers docker
    nameserver dns 127.0.0.11:53
    resolve_retries 3
    timeout resolve 500ms
    timeout retry 500ms
    hold valid 1s
    hold nx 1s
    hold other 1s
    hold refused 1s
    hold timeout 1s
    hold obsolete 1s

defaults
    mode http
    option httplog
    timeout connect {lb.timeout_connect_ms}ms
    timeout client {lb.timeout_client_ms}ms
    timeout server {lb.timeout_server_ms}ms
    timeout http-request 10s
    retries {lb.retries}
{redispatch}    default-server init-addr none resolvers docker

frontend web
    bind :{FRONTEND_PORT}
    default_backend {BACKEND_NAME}

backend {BACKEND_NAME}
    balance roundrobin
    option httpchk GET {service.health_path}
    http-check expect status 200
{servers}
"""


@dataclass(frozen=True)
class ServerStat:
    """One server row of ``show stat``: what the LB thinks of an instance right now."""

    name: str
    status: str  # UP, DOWN, MAINT, DRAIN, "UP 1/2", "MAINT (resolution)", no check …
    weight: int
    current_sessions: int
    total_sessions: int
    responses_5xx: int
    check_status: str
    address: str

    @property
    def in_rotation(self) -> bool:
        """True when new requests may be sent to this server."""
        return self.status.startswith("UP") and self.weight > 0


class HAProxyRuntime:
    """A client for HAProxy's runtime API on a TCP socket (one command per connection)."""

    def __init__(
        self, host: str, port: int, *, timeout_s: float = 5.0, retry_s: float = 15.0
    ) -> None:
        self.host = host
        self.port = port
        self.timeout_s = timeout_s
        self.retry_s = retry_s

    def command(self, line: str) -> str:
        """Send one command and return HAProxy's whole answer.

        A connection failure is retried for ``retry_s``: HAProxy restarted mid-rollout (a
        chaos experiment does exactly that) must not turn the rollback's own commands into
        failures. Every command Cautious sends is idempotent, so a retry is safe.
        """
        deadline = time.monotonic() + self.retry_s
        while True:
            try:
                return self._command(line)
            except SandboxError:
                if time.monotonic() >= deadline:
                    raise
            time.sleep(_RETRY_POLL_S)

    def _command(self, line: str) -> str:
        try:
            with socket.create_connection((self.host, self.port), timeout=self.timeout_s) as sock:
                sock.sendall(line.encode() + b"\n")
                chunks = []
                while chunk := sock.recv(65536):
                    chunks.append(chunk)
        except OSError as exc:
            raise SandboxError(
                f"HAProxy runtime API at {self.host}:{self.port} did not answer {line!r}: {exc}"
            ) from exc
        if not chunks:
            # HAProxy ends every answer with a newline; a silent close is Docker's port proxy
            # accepting for a container that is not listening (yet).
            raise SandboxError(
                f"HAProxy runtime API at {self.host}:{self.port} did not answer {line!r}: "
                "connection closed without a reply"
            )
        return b"".join(chunks).decode(errors="replace")

    def _server_command(self, line: str) -> None:
        answer = self.command(line).strip()
        if answer:  # set server … answers nothing on success
            raise SandboxError(f"HAProxy refused {line!r}: {answer}")

    def set_state(self, server: str, state: AdminState) -> None:
        """Drain (finish sessions, take no new ones), maint (out), or ready (back in)."""
        self._server_command(f"set server {BACKEND_NAME}/{server} state {state}")

    def set_weight(self, server: str, weight: int) -> None:
        """Relative share of new requests (0–256); canaries steer traffic with this."""
        if not 0 <= weight <= 256:
            raise ValueError(f"HAProxy weights go from 0 to 256, not {weight}")
        self._server_command(f"set server {BACKEND_NAME}/{server} weight {weight}")

    def set_address(self, server: str, ip: str, port: int) -> None:
        """Point a slot at a fresh container without waiting for DNS to notice."""
        answer = self.command(f"set server {BACKEND_NAME}/{server} addr {ip} port {port}")
        if "changed" not in answer and "no need to change" not in answer:
            raise SandboxError(f"HAProxy refused the new address of {server}: {answer.strip()}")

    def stats(self) -> dict[str, ServerStat]:
        """Every server of the backend, by name."""
        rows = csv.DictReader(io.StringIO(self.command("show stat").lstrip("# ")))
        return {
            row["svname"]: ServerStat(
                name=row["svname"],
                status=row["status"],
                weight=int(row["weight"] or 0),
                current_sessions=int(row["scur"] or 0),
                total_sessions=int(row["stot"] or 0),
                responses_5xx=int(row["hrsp_5xx"] or 0),
                check_status=row["check_status"],
                address=row.get("addr", ""),
            )
            for row in rows
            if row["pxname"] == BACKEND_NAME and row["svname"] not in {"BACKEND", "FRONTEND"}
        }

    def server(self, name: str) -> ServerStat:
        """One server's row, or a SandboxError when the slot does not exist."""
        try:
            return self.stats()[name]
        except KeyError:
            raise SandboxError(f"HAProxy has no server {BACKEND_NAME}/{name}") from None

    def wait_answering(self, *, timeout_s: float, poll_s: float = 0.1) -> None:
        """Poll until the runtime API answers (HAProxy just started); SandboxError after."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self._command("show info")
                return
            except SandboxError:
                if time.monotonic() >= deadline:
                    raise
            time.sleep(poll_s)

    def wait_until(
        self,
        servers: Iterable[str],
        condition: str,
        *,
        timeout_s: float,
        poll_s: float = 0.1,
    ) -> float:
        """Poll until every server meets ``condition``; return seconds waited.

        Conditions: ``up`` (fully UP: a server just out of maint shows "UP 1/2" until its next
        check passes), ``down`` (not UP at all), ``idle`` (no current sessions).
        """
        names = list(servers)
        checks: dict[str, Callable[[ServerStat], bool]] = {
            "up": lambda stat: stat.status == "UP",
            "down": lambda stat: not stat.status.startswith("UP"),
            "idle": lambda stat: stat.current_sessions == 0,
        }
        check = checks[condition]
        started = time.monotonic()
        deadline = started + timeout_s
        while True:
            stats = self.stats()
            if all(name in stats and check(stats[name]) for name in names):
                return time.monotonic() - started
            if time.monotonic() >= deadline:
                states = ", ".join(
                    f"{n}={stats[n].status}/scur={stats[n].current_sessions}"
                    for n in names
                    if n in stats
                )
                raise SandboxError(
                    f"HAProxy servers not {condition} after {timeout_s:g} s: {states}"
                )
            time.sleep(poll_s)
