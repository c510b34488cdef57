"""SSH keys: pinned host keys (known_hosts), the policies that enforce them, key generation.

Fabric's ``Connection`` accepts any host key (it installs paramiko's ``AutoAddPolicy``) and
never reads known_hosts. Deploying to a host whose key nobody checked hands the release — and
the restart command — to whoever answers on that address, so the ssh backend loads the pinned
known_hosts itself and refuses unknown keys. Trust on first use is an explicit opt-in that
records the key it saw, so the second connection is checked against the first.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cautious.exceptions import HostKeyError

__all__ = [
    "KeyPair",
    "PinnedKeys",
    "fingerprint",
    "generate_key_pair",
    "known_hosts_line",
    "known_hosts_name",
]


def known_hosts_name(address: str, port: int) -> str:
    """How OpenSSH (and paramiko) name a host in known_hosts: ``[addr]:port`` off port 22."""
    return address if port == 22 else f"[{address}]:{port}"


def fingerprint(key: paramiko.PKey) -> str:
    """``SHA256:…`` as ``ssh-keygen -l`` prints it, so users can compare keys by eye."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def known_hosts_line(name: str, public_key: str) -> str:
    """One known_hosts line for ``name`` from an OpenSSH public key (``ssh-ed25519 AAAA…``)."""
    kind, blob = public_key.split()[:2]
    return f"{name} {kind} {blob}\n"


class _Record(paramiko.MissingHostKeyPolicy):
    """Trust on first use: accept an unknown key and append it to known_hosts."""

    def __init__(self, pinned: PinnedKeys) -> None:
        self.pinned = pinned

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        self.pinned.record(hostname, key)


class _Refuse(paramiko.MissingHostKeyPolicy):
    """Strict checking: a host missing from known_hosts is bad input, named in one line."""

    def __init__(self, pinned: PinnedKeys) -> None:
        self.pinned = pinned

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        raise HostKeyError(
            f"host {hostname} is not in {self.pinned.path} (it offers {key.get_name()} "
            f"{fingerprint(key)}); add its key, or set ssh.trust_on_first_use: true"
        )


@dataclass
class PinnedKeys:
    """The known_hosts file a cluster trusts, and whether unknown hosts may be recorded."""

    path: Path
    trust_on_first_use: bool = False
    say: Callable[[str], None] = print

    def apply(self, client: paramiko.SSHClient) -> None:
        """Make ``client`` check host keys against this file (and nothing else)."""
        if self.path.is_file():
            client.load_host_keys(str(self.path))
        policy = _Record(self) if self.trust_on_first_use else _Refuse(self)
        client.set_missing_host_key_policy(policy)

    def record(self, name: str, key: paramiko.PKey) -> None:
        """Append ``name``'s key under a file lock (hosts connect in parallel)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            handle.write(f"{name} {key.get_name()} {key.get_base64()}\n")
        self.say(
            f"trusted on first use: {name} {key.get_name()} {fingerprint(key)} "
            f"recorded in {self.path}"
        )

    def write(self, lines: list[str]) -> None:
        """Replace the file with exactly these pins (the ssh-sandbox knows its hosts' keys)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text("".join(lines), encoding="utf-8")
        temporary.replace(self.path)


@dataclass(frozen=True)
class KeyPair:
    """An Ed25519 key pair in OpenSSH formats."""

    private_openssh: str
    public_openssh: str  # ``ssh-ed25519 AAAA… comment``

    def write(self, private_path: Path) -> Path:
        """Write the private key (0600) and ``.pub`` beside it; return the private key's path."""
        private_path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            private_path.unlink()
        private_path.touch(mode=0o600)
        private_path.write_text(self.private_openssh, encoding="utf-8")
        private_path.with_suffix(".pub").write_text(self.public_openssh + "\n", encoding="utf-8")
        return private_path


def generate_key_pair(comment: str) -> KeyPair:
    """A fresh Ed25519 pair, made in-process (no ssh-keygen needed)."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return KeyPair(private, f"{public.decode()} {comment}")
