"""A release for SSH hosts: the build context plus its environment, as one reproducible tarball.

The tarball holds the service's files, ``release.env`` (``CAUTIOUS_RELEASE`` and the release's
environment overlay) and ``run``, which loads that environment and starts the configured
command. Entries are sorted and their times, owners and modes normalised, so the same sources
and environment always give the same sha256 — the release's digest, which each host checks
after the upload. Built tarballs are kept by digest on this machine, so a rollback finds the
exact bytes a journal names.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shlex
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cautious.exceptions import ConfigError, SandboxError
from cautious.release import Release

__all__ = ["ArtifactStore", "release_env_text", "run_script"]

_SKIPPED_NAMES = frozenset({"__pycache__", ".git", ".pytest_cache", ".mypy_cache", ".ruff_cache"})
_SKIPPED_SUFFIXES = (".pyc", ".pyo")
_GENERATED = ("release.env", "run", "RELEASE.json")


def release_env_text(label: str, env: Mapping[str, str]) -> str:
    """``KEY='value'`` lines: sourced by ``run`` under ``set -a``; systemd reads them too."""
    merged = {**env, "CAUTIOUS_RELEASE": label}
    return "".join(f"{key}={shlex.quote(value)}\n" for key, value in sorted(merged.items()))


def run_script(command: Sequence[str]) -> str:
    """The release's entry point: its own directory, its own environment, then the command."""
    return (
        "#!/bin/sh\n"
        "# Written by Cautious: start this release with its environment.\n"
        'cd "$(dirname "$0")" || exit 111\n'
        "set -a\n"
        ". ./release.env\n"
        "set +a\n"
        f"exec {shlex.join(command)}\n"
    )


@dataclass(frozen=True)
class _Entry:
    name: str
    data: bytes
    mode: int


class ArtifactStore:
    """Built release tarballs on this machine, by digest, with an index by label."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def tarball(self, digest: str) -> Path:
        return self.folder / f"{digest.removeprefix('sha256:')}.tar.gz"

    def unpacked_bytes(self, digest: str) -> int:
        """The release's size once unpacked (what a host needs free besides the tarball)."""
        meta = self.folder / f"{digest.removeprefix('sha256:')}.json"
        try:
            return int(json.loads(meta.read_text(encoding="utf-8"))["unpacked_bytes"])
        except (OSError, ValueError, KeyError):
            return 0

    def build(
        self,
        context: Path,
        label: str,
        env: Mapping[str, str],
        command: Sequence[str],
        git_sha: str | None,
    ) -> Release:
        """Pack ``context`` with the release's environment; return the release it makes."""
        if not context.is_dir():
            raise ConfigError(f"service.context: {context} is not a folder")
        manifest = {"label": label, "git_sha": git_sha, "command": list(command)}
        entries = [*_context_entries(context)]
        entries += [
            # the environment may hold secrets: only the user that runs the service reads it
            _Entry("release.env", release_env_text(label, env).encode(), 0o600),
            _Entry("run", run_script(command).encode(), 0o755),
            _Entry("RELEASE.json", (json.dumps(manifest, sort_keys=True) + "\n").encode(), 0o644),
        ]
        data = _tar_gz(entries)
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.tarball(digest)
        if not path.is_file():
            temporary = path.with_suffix(".part")
            temporary.write_bytes(data)
            temporary.replace(path)
        unpacked = sum(len(entry.data) for entry in entries)
        meta = {"label": label, "digest": digest, "git_sha": git_sha, "unpacked_bytes": unpacked}
        (self.folder / f"{digest.removeprefix('sha256:')}.json").write_text(json.dumps(meta))
        (self.folder / f"{label}.json").write_text(json.dumps(meta))
        return Release(label=label, image=str(path), digest=digest, git_sha=git_sha)

    def find(self, label: str) -> Release | None:
        """The last build of ``label``, if its tarball is still here."""
        try:
            meta = json.loads((self.folder / f"{label}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        path = self.tarball(meta["digest"])
        if not path.is_file():
            return None
        return Release(label, str(path), meta["digest"], meta.get("git_sha"))

    def by_digest(self, label: str, digest: str) -> Release:
        """Exactly the build a journal names; hosts that still have it need no tarball."""
        return Release(label=label, image=str(self.tarball(digest)), digest=digest)

    def require_tarball(self, release: Release) -> Path:
        path = self.tarball(release.digest)
        if not path.is_file():
            raise SandboxError(
                f"the tarball of release {release.label} ({release.short_digest}) is gone from "
                f"{self.folder} and a host needs it; rebuild it with `invoke build --release "
                f"{release.label}`"
            )
        return path


def _context_entries(context: Path) -> list[_Entry]:
    entries = []
    for path in sorted(context.rglob("*")):
        relative = path.relative_to(context)
        if any(part in _SKIPPED_NAMES for part in relative.parts):
            continue
        if not path.is_file() or path.suffix in _SKIPPED_SUFFIXES:
            continue
        if relative.as_posix() in _GENERATED:
            raise ConfigError(
                f"service.context: {relative} would be overwritten by the file Cautious writes "
                "into every release; rename it"
            )
        mode = 0o755 if path.stat().st_mode & 0o100 else 0o644
        entries.append(_Entry(relative.as_posix(), path.read_bytes(), mode))
    return entries


def _tar_gz(entries: list[_Entry]) -> bytes:
    """A tarball whose bytes depend only on names, contents and modes."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for entry in sorted(entries, key=lambda item: item.name):
            info = tarfile.TarInfo(entry.name)
            info.size = len(entry.data)
            info.mode = entry.mode
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            archive.addfile(info, io.BytesIO(entry.data))
    return gzip.compress(raw.getvalue(), compresslevel=6, mtime=0)
