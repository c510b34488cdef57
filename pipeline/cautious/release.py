"""Releases: immutable builds of the service, whichever backend built them.

A release is identified by its *digest* (what exactly runs), named by its label (``v2``, or
``git-<sha>`` for the working tree) and traced to the git revision it was built from. How a
release is built and shipped is the backend's business (``cautious.backends``).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Release", "git_revision"]


@dataclass(frozen=True)
class Release:
    """One immutable build: what the journal records and the backend runs."""

    label: str
    image: str  # the backend's handle to run it, e.g. the image tag cautious/sample:v2
    digest: str  # the build's identity, e.g. the image id sha256:…
    git_sha: str | None = None

    @property
    def short_digest(self) -> str:
        return self.digest.removeprefix("sha256:")[:12]


def git_revision(folder: Path) -> str | None:
    """Short sha of the working tree's HEAD, with ``-dirty`` when it has local changes."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(folder), *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()

    try:
        sha = git("rev-parse", "--short=12", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{sha}-dirty" if dirty else sha
