"""State stores a backend can offer: files in a folder, or memory (the fake's).

A backend keeps its cluster's lock and journal with the cluster (:class:`StateStore`): the
docker backend in a labelled volume, the fake in memory. :func:`store_of` picks the backend's
store, and a folder on this machine for a backend that offers none — only this machine's
checkouts then share it.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from cautious.backends.base import HasStateStore, StateStore
from cautious.exceptions import ConfigError
from cautious.inputs import read_text

__all__ = ["DirectoryStore", "MemoryStore", "store_of", "too_large"]


def too_large(where: str, name: str, max_bytes: int) -> ConfigError:
    """The refusal of a state file over its bound (the journal is written only by Cautious)."""
    return ConfigError(
        f"{name} in {where} is over {max_bytes} bytes; move it aside to start a new history"
    )


def store_of(backend: object, folder: Path) -> StateStore:
    """The backend's own store, or ``folder`` on this machine when it has none."""
    if isinstance(backend, HasStateStore):
        return backend.state_store()
    return DirectoryStore(folder)


class DirectoryStore:
    """Files in a folder; ``create`` is ``O_EXCL``, ``replace`` a rename."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.where = f"folder {folder}"

    def read(self, name: str, max_bytes: int) -> str:
        path = self.folder / name
        if not os.path.lexists(path):
            return ""
        return read_text(path, name, max_bytes)

    def append(self, name: str, text: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        with (self.folder / name).open("a", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())

    def create(self, name: str, text: str) -> bool:
        self.folder.mkdir(parents=True, exist_ok=True)
        try:
            descriptor = os.open(self.folder / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return False
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
        return True

    def replace(self, name: str, text: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        scratch = self.folder / f".{name}.{os.getpid()}.{threading.get_ident()}"
        scratch.write_text(text, encoding="utf-8")
        scratch.replace(self.folder / name)

    def remove(self, name: str) -> None:
        (self.folder / name).unlink(missing_ok=True)


class MemoryStore:
    """Files in a dict, for the fake backend: shared by every journal of one fake cluster."""

    def __init__(self) -> None:
        self.where = f"memory {id(self):x}"
        self.files: dict[str, str] = {}
        self._guard = threading.Lock()

    def read(self, name: str, max_bytes: int) -> str:
        text = self.files.get(name, "")
        if len(text.encode()) > max_bytes:
            raise too_large(self.where, name, max_bytes)
        return text

    def append(self, name: str, text: str) -> None:
        with self._guard:
            self.files[name] = self.files.get(name, "") + text

    def create(self, name: str, text: str) -> bool:
        with self._guard:
            if name in self.files:
                return False
            self.files[name] = text
            return True

    def replace(self, name: str, text: str) -> None:
        with self._guard:
            self.files[name] = text

    def remove(self, name: str) -> None:
        with self._guard:
            self.files.pop(name, None)
