"""Files that stages hand to each other: a growing log followed line by line, JSON read and
written so that a reader never sees half a file."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["LineFollower", "read_json_object", "write_json_atomic"]


class LineFollower:
    """Hands out what was appended to a growing file since the last call, whole lines only.

    A last line without its newline waits for the next call, so a writer that flushes mid-line
    is never read in halves; ``hold_back`` lets a reader that knows the format hold back more
    (a quoted CSV field that spans lines). A file that does not exist yet has nothing. At most
    ``max_bytes`` are read per call, so a poll never holds a large file in memory at once.
    """

    def __init__(
        self,
        path: Path,
        *,
        max_bytes: int = 1 << 20,
        hold_back: Callable[[bytes], bytes] = lambda whole: whole,
    ) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._hold_back = hold_back
        self.handed_out = 0  # bytes handed out so far: 0 until the first line (a header) came

    def new_bytes(self) -> bytes:
        try:
            with self.path.open("rb") as handle:
                handle.seek(self.handed_out)
                chunk = handle.read(self.max_bytes)
        except FileNotFoundError:
            return b""
        whole = self._hold_back(chunk[: chunk.rfind(b"\n") + 1])
        self.handed_out += len(whole)
        return whole

    def new_lines(self) -> list[str]:
        return self.new_bytes().decode("utf-8", errors="replace").splitlines()


def read_json_object(path: Path) -> dict[str, Any] | None:
    """A JSON object from ``path``; None when the file is missing, unreadable or not an object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON with sorted keys, through a rename: a reader sees the old
    file or the new one, never a partial write."""
    scratch = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    scratch.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    scratch.replace(path)
