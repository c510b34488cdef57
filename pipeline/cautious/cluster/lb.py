"""HAProxy for the sandbox: its configuration, and a client for its runtime API.

The backend has a fixed pool of server *slots* — the cluster backend's slot names — so the
configuration never changes while instances come and go. How HAProxy reaches a slot (a DNS name
resolved at run time, a fixed address) is the cluster backend's to say (``LbAddressing``); a slot
without an instance stays out of rotation. Rollouts steer traffic with runtime commands —
``drain``, ``maint``, ``ready``, ``weight`` — and read ``show stat``.

Read-only mode is a blanket proxy in the frontend: while the server ``read_only/on`` (a switch,
not a real server; it is ``disabled`` at start) is UP, every request other than GET, HEAD and
OPTIONS is answered by HAProxy itself with 503, ``Retry-After`` and ``X-Instance: read-only``
(so the request log attributes the refusal to the LB), and reads go on to the backend. The
switch is thrown with the same runtime command as any server state: no reload, no map file.
"""

from __future__ import annotations

import csv
import io
import socket
import time

from cautious.backends.base import LbAddressing
from cautious.cluster.balancer import AdminState, LoadBalancer, ServerStat
from cautious.config import Config
from cautious.exceptions import SandboxError

__all__ = [
    "BACKEND_NAME",
    "FRONTEND_PORT",
    "READ_ONLY_RETRY_AFTER_S",
    "READ_ONLY_SWITCH",
    "RUNTIME_PORT",
    "HAProxyRuntime",
    "render_haproxy_config",
]

BACKEND_NAME = "app"
FRONTEND_PORT = 8080
RUNTIME_PORT = 9999
READ_ONLY_SWITCH = "read_only/on"
READ_ONLY_RETRY_AFTER_S = 5
_READ_ONLY_BACKEND, _READ_ONLY_SERVER = READ_ONLY_SWITCH.split("/")
# One line: HAProxy's configuration has no continuation lines.
_READ_ONLY_RULE = (
    "http-request return status 503 content-type application/json "
    'string "{\\"error\\": \\"read-only\\", \\"status\\": 503}" '
    f"hdr Retry-After {READ_ONLY_RETRY_AFTER_S} hdr X-Instance read-only "
    f"if !{{ method GET HEAD OPTIONS }} {{ srv_is_up({READ_ONLY_SWITCH}) }}"
)

_RETRY_POLL_S = 0.2


def render_haproxy_config(config: Config, addressing: LbAddressing) -> str:
    """The sandbox's haproxy.cfg: one frontend, one backend with a server per slot."""
    lb = config.lb
    service = config.service
    checks = (
        f"check inter {lb.check_interval_ms}ms fastinter {max(100, lb.check_interval_ms // 2)}ms "
        f"rise {lb.rise} fall {lb.fall}"
    )
    servers = "\n".join(
        f"    server {name} {address} {checks}" for name, address in addressing.servers
    )
    redispatch = "    option redispatch\n" if lb.redispatch else ""
    sections = f"{addressing.sections.strip()}\n\n" if addressing.sections.strip() else ""
    default_server = (
        f"    default-server {addressing.default_server}\n" if addressing.default_server else ""
    )
    return f"""# Rendered by Cautious for cluster {config.cluster.name!r}; do not edit.
global
    maxconn 4096
    stats socket ipv4@0.0.0.0:{RUNTIME_PORT} level admin
    stats timeout 30s

{sections}defaults
    mode http
    option httplog
    timeout connect {lb.timeout_connect_ms}ms
    timeout client {lb.timeout_client_ms}ms
    timeout server {lb.timeout_server_ms}ms
    timeout http-request 10s
    retries {lb.retries}
{redispatch}{default_server}
frontend web
    bind :{FRONTEND_PORT}
    {_READ_ONLY_RULE}
    default_backend {BACKEND_NAME}

backend {BACKEND_NAME}
    balance roundrobin
    option httpchk GET {service.health_path}
    http-check expect status 200
{servers}

backend {_READ_ONLY_BACKEND}
    server {_READ_ONLY_SERVER} 127.0.0.1:9 disabled
"""


class HAProxyRuntime(LoadBalancer):
    """A client for HAProxy's runtime API on a TCP socket (one command per connection)."""

    poll_s = 0.1

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

    def set_read_only(self, on: bool) -> None:
        """Refuse writes at the LB (503 + Retry-After) or let them through again."""
        self._server_command(f"set server {READ_ONLY_SWITCH} state {'ready' if on else 'maint'}")

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

    def wait_answering(self, *, timeout_s: float) -> None:
        """Poll until the runtime API answers (HAProxy just started); SandboxError after."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self._command("show info")
                return
            except SandboxError:
                if time.monotonic() >= deadline:
                    raise
            time.sleep(self.poll_s)
