"""SSH to the hosts through Fabric: pinned host keys, bounded commands, one-line errors.

Each host gets one Fabric ``Connection``, opened on first use and kept (a command over an open
connection costs a channel, not a handshake). Connections are built with an empty SSH config and
Invoke's lazy configuration, so nothing in the user's ``~/.ssh/config`` or ``~/.fabric.yaml``
changes which key or host is used; the pinned known_hosts is applied before the first connect.
Batches run on a Fabric ``ThreadingGroup``: one command on every host at once.
"""

from __future__ import annotations

import logging
import shlex
import socket
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paramiko
from fabric import Config as FabricConfig
from fabric import Connection, ThreadingGroup
from fabric.exceptions import GroupException
from invoke.exceptions import CommandTimedOut
from paramiko.config import SSHConfig

from cautious.backends.ssh.inventory import Host
from cautious.backends.ssh.keys import PinnedKeys, fingerprint
from cautious.exceptions import CautiousError, HostKeyError, HostUnreachable, PrerequisiteError

__all__ = ["Access", "Output", "Remote", "Remotes"]

# paramiko's transport thread logs tracebacks for failures Cautious reports itself, in one line.
logging.getLogger("paramiko").addHandler(logging.NullHandler())


@dataclass(frozen=True)
class Output:
    """What a remote command printed and how it exited (a non-zero exit is not an error)."""

    exit_code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def last_line(self) -> str:
        """The most telling line for a one-line error: stderr's last, else stdout's last."""
        lines = (self.stderr.strip() or self.stdout.strip()).splitlines()
        return lines[-1].strip() if lines else f"exit code {self.exit_code}"


@dataclass(frozen=True)
class Access:
    """How to reach every host of a cluster: identity, pinned keys, deadlines."""

    pinned: PinnedKeys
    identity_file: Path | None
    connect_timeout_s: float
    command_timeout_s: float


class Remote:
    """One host: a lazily opened Fabric connection and commands that never hang."""

    def __init__(self, host: Host, access: Access) -> None:
        self.host = host
        self.access = access
        self._connection: Connection | None = None
        self._lock = threading.Lock()

    def connection(self) -> Connection:
        """The open connection, (re)opened when needed; one-line errors when it cannot be."""
        with self._lock:
            if self._connection is not None and self._connection.is_connected:
                return self._connection
            if self._connection is not None:
                self._connection.close()
            self._connection = self._open()
            return self._connection

    def _open(self) -> Connection:
        identity = self.access.identity_file
        connect_kwargs: dict[str, Any] = {
            "allow_agent": identity is None,
            "look_for_keys": False,
            "banner_timeout": self.access.connect_timeout_s,
            "auth_timeout": self.access.connect_timeout_s,
        }
        if identity is not None:
            if not identity.is_file():
                raise PrerequisiteError(f"ssh.identity_file {identity} does not exist")
            connect_kwargs["key_filename"] = str(identity)
        connection = Connection(
            self.host.address,
            user=self.host.user,
            port=self.host.ssh_port,
            config=FabricConfig(lazy=True, ssh_config=SSHConfig()),
            connect_timeout=max(1, round(self.access.connect_timeout_s)),
            connect_kwargs=connect_kwargs,
        )
        # Fabric installs AutoAddPolicy and reads no known_hosts: replace both before connecting.
        self.access.pinned.apply(connection.client)
        try:
            connection.open()
        except BaseException as exc:
            connection.close()
            raise self.explain(exc) from None
        return connection

    def run(self, script: str, *, timeout_s: float | None = None) -> Output:
        """Run a POSIX shell script on the host; HostUnreachable when the host does not answer."""
        timeout = timeout_s or self.access.command_timeout_s
        connection = self.connection()
        try:
            result = connection.run(
                f"sh -c {shlex.quote(script)}",
                hide=True,
                warn=True,
                pty=False,
                in_stream=False,
                timeout=timeout,
            )
        except CommandTimedOut:
            raise HostUnreachable(
                f"{self.host.name}: a command ran past {timeout:g} s ({_first_line(script)})"
            ) from None
        except Exception as exc:
            self.close()
            raise self.explain(exc) from None
        return Output(result.exited, result.stdout, result.stderr)

    def put(self, local: Path, remote: str) -> None:
        """Upload one file over SFTP."""
        connection = self.connection()
        try:
            connection.put(str(local), remote=remote, preserve_mode=False)
        except Exception as exc:
            raise self.explain(exc) from None

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    def explain(self, exc: BaseException) -> CautiousError:
        """One line that names the host and what to do, for every way SSH fails."""
        host = self.host
        if isinstance(exc, CautiousError):
            return exc
        if isinstance(exc, paramiko.BadHostKeyException):
            return HostKeyError(
                f"host {host.target} offers {exc.key.get_name()} {fingerprint(exc.key)} but "
                f"{self.access.pinned.path} pins {fingerprint(exc.expected_key)}: the host "
                "was reinstalled or someone is in between; check it, then update known_hosts"
            )
        if isinstance(exc, paramiko.AuthenticationException):
            identity = self.access.identity_file or "the SSH agent's keys"
            return PrerequisiteError(
                f"host {host.target} refused {host.user}'s login with {identity}: "
                "install the public key in the user's authorized_keys or fix ssh.identity_file"
            )
        if isinstance(exc, OSError | EOFError | paramiko.SSHException):
            reason = _reason(exc)
            return HostUnreachable(f"host {host.target} does not answer SSH: {reason}")
        if isinstance(exc, Exception):
            return HostUnreachable(f"host {host.target}: {type(exc).__name__}: {exc}")
        raise exc


class Remotes:
    """The connections to every host of a cluster, and batches over all of them."""

    def __init__(self, hosts: Iterable[Host], access: Access) -> None:
        self.access = access
        self.by_host = {host: Remote(host, access) for host in hosts}

    def __getitem__(self, host: Host) -> Remote:
        return self.by_host[host]

    def run_everywhere(
        self,
        script: str | Callable[[Host], str],
        hosts: Iterable[Host] | None = None,
        *,
        timeout_s: float | None = None,
    ) -> dict[Host, Output]:
        """Run a script on every host (or ``hosts``) at once; the first failure raises.

        Connections are opened first, in parallel too, so a host that is down or has an
        unknown key is reported before any command ran anywhere. One script for all runs on a
        Fabric ThreadingGroup; a script per host (a function of the host) on plain threads.
        """
        chosen = self._chosen(hosts)
        self._each(Remote.connection, chosen)
        if callable(script):
            return self._each(
                lambda remote: remote.run(script(remote.host), timeout_s=timeout_s), chosen
            )
        remotes = {remote.connection(): remote for remote in chosen}
        timeout = timeout_s or self.access.command_timeout_s
        group = ThreadingGroup.from_connections(list(remotes))
        command = f"sh -c {shlex.quote(script)}"
        try:
            results = group.run(
                command, hide=True, warn=True, pty=False, in_stream=False, timeout=timeout
            )
        except GroupException as exc:
            for connection, value in exc.result.items():
                if isinstance(value, BaseException):
                    remotes[connection].close()
                    raise remotes[connection].explain(value) from None
            raise
        return {
            remotes[connection].host: Output(result.exited, result.stdout, result.stderr)
            for connection, result in results.items()
        }

    def run_each(self, script: Callable[[Host], str]) -> dict[Host, Output | HostUnreachable]:
        """A script per host, on every host at once; a host that does not answer maps to its
        error, so one host down does not hide what the others say."""

        def run(remote: Remote) -> Output | HostUnreachable:
            try:
                return remote.run(script(remote.host))
            except HostUnreachable as exc:
                return exc

        return self._each(run, list(self.by_host.values()))

    def put_everywhere(
        self, local: Path, remote_path: str, hosts: Iterable[Host] | None = None
    ) -> None:
        """Upload one file to every host (or ``hosts``) at once, on a ThreadingGroup."""
        chosen = self._chosen(hosts)
        self._each(Remote.connection, chosen)
        remotes = {remote.connection(): remote for remote in chosen}
        group = ThreadingGroup.from_connections(list(remotes))
        try:
            group.put(str(local), remote=remote_path, preserve_mode=False)
        except GroupException as exc:
            for connection, value in exc.result.items():
                if isinstance(value, BaseException):
                    raise remotes[connection].explain(value) from None
            raise

    def _chosen(self, hosts: Iterable[Host] | None) -> list[Remote]:
        wanted = set(self.by_host) if hosts is None else set(hosts)
        return [remote for host, remote in self.by_host.items() if host in wanted]

    def _each(self, body: Callable[[Remote], Any], remotes: list[Remote]) -> dict[Host, Any]:
        """``body`` per host in threads; the first host's error (in inventory order) raises."""
        outcomes: dict[Host, Any] = {}
        errors: dict[Host, BaseException] = {}

        def work(remote: Remote) -> None:
            try:
                outcomes[remote.host] = body(remote)
            except BaseException as exc:
                errors[remote.host] = exc

        threads = [threading.Thread(target=work, args=(remote,)) for remote in remotes]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for remote in remotes:
            if remote.host in errors:
                raise errors[remote.host]
        return outcomes

    def close(self) -> None:
        for remote in self.by_host.values():
            remote.close()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timed out"
    if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError):
        return "connection refused"
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def _first_line(script: str) -> str:
    return script.strip().splitlines()[0][:80] if script.strip() else ""
