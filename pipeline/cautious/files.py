"""Files that stages hand to each other: a growing log followed line by line, JSON read and
written so that a reader never sees half a file."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = ["LineFollower", "read_json_object", "write_json_atomic"]


class LineFollower:
    """Hands out the whole lines appended to a file since the last call.

    A last line without its newline waits for the next call, so a writer that flushes mid-line
    is never read in halves. A file that does not exist yet has no lines.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0

    def new_lines(self) -> list[str]:
        try:
            with self.path.open("rb") as handle:
                handle.seek(self._offset)
                chunk = handle.read()
        except OSError:
            return []
        end = chunk.rfind(b"\n") + 1
        self._offset += end
        return chunk[:end].decode("utf-8", errors="replace").splitlines()


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
