"""Reading what comes from outside — files, documents, flag values — within bounds.

Everything a user hands Cautious passes through here before it is trusted: a file must be a
regular file of bounded size in UTF-8 (a FIFO would hang the read, a binary file would crash the
decoder); YAML is loaded without aliases (an alias bomb expands to gigabytes), without duplicate
keys (the last one would silently win) and no deeper than :data:`MAX_DEPTH`; JSON likewise, and
without ``NaN`` or infinite numbers. Each refusal is a :class:`ConfigError` (exit 2) whose one
line names the file, where in it, and what is allowed.
"""

from __future__ import annotations

import json
import math
import os
import stat
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

import yaml

from cautious.exceptions import ConfigError

__all__ = [
    "MAX_DEPTH",
    "MAX_DOCUMENT_BYTES",
    "clip",
    "finite_number",
    "folder_to_write",
    "invalid_value",
    "load_json",
    "load_yaml",
    "printable",
    "read_text",
    "shorten",
]

MAX_DEPTH = 64  # deeper documents are refused: no real configuration, suite or report nests so
MAX_DOCUMENT_BYTES = 64 * 1024 * 1024  # the largest report.json of a long run is a few MiB
_SHORT = 60
_PATH_WIDTH = 80


def clip(text: str, width: int) -> str:
    """``text`` whole when it fits in ``width`` characters, else its start and end around …"""
    if len(text) <= width:
        return text
    half = (width - 1) // 2
    return f"{text[:half]}…{text[len(text) - (width - 1 - half) :]}"


def shorten(value: object, width: int = _SHORT) -> str:
    """A value for a message: its ``repr``, clipped to ``width`` characters."""
    return clip(repr(value), width)


def invalid_value(error: Mapping[str, Any]) -> str:
    """One of pydantic's error details as a message: which key, which value, what is allowed."""
    where = clip(".".join(str(part) for part in error["loc"]), 80) or "the document"
    if error["type"] == "missing":
        return f"{where} is missing"
    reason = clip(str(error["msg"]).removeprefix("Value error, "), 100)
    return f"{where} = {shorten(error.get('input'))} is not allowed: {reason}"


def finite_number(flag: str, value: str, *, low: float, high: float, unit: str = "") -> float:
    """A flag's text as a number from ``low`` to ``high`` (never NaN or infinite)."""
    allowed = f"a number from {low:g} to {high:g}{unit}"
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"{flag} takes {allowed}, not {shorten(value)}") from None
    if not (math.isfinite(number) and low <= number <= high):
        raise ConfigError(f"{flag} takes {allowed}, not {shorten(value)}")
    return number


def folder_to_write(path: str | os.PathLike[str], flag: str) -> Path:
    """A folder a command will write into, checked before anything runs: it is absent (it will
    be made) or a folder, and no part of it is a file, a FIFO or a device."""
    text = os.fspath(path)
    shown = clip(printable(text), _PATH_WIDTH)
    if not text.strip() or "\x00" in text:
        raise ConfigError(f"{flag} takes the path of a folder, not {shorten(text)}")
    folder = Path(text)
    for part in (folder, *folder.parents):
        try:
            mode = os.stat(part).st_mode
        except (FileNotFoundError, NotADirectoryError):
            continue  # made later; or a part above is no folder, which the loop reaches
        except OSError as exc:
            raise ConfigError(f"{flag}: {shown} cannot be used ({exc.strerror})") from None
        if not stat.S_ISDIR(mode):
            where = shown if part == folder else clip(printable(str(part)), _PATH_WIDTH)
            raise ConfigError(f"{flag}: {where} is {_kind(mode)}, not a folder")
        break
    return folder


def printable(text: str) -> str:
    """``text`` with control characters written as escapes, so a message stays one line."""
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


def read_text(path: str | os.PathLike[str], what: str, max_bytes: int) -> str:
    """The UTF-8 text of the regular file at ``path``, at most ``max_bytes`` long.

    Opened without blocking, then checked with ``fstat``: a FIFO, a device or a folder is
    refused before anything is read from it. ``what`` names the file in messages ("the
    configuration", "report.json").
    """
    shown = clip(printable(os.fspath(path)), _PATH_WIDTH)
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ConfigError(f"{what}: no file at {shown}") from None
    except PermissionError:
        raise ConfigError(f"{what}: {shown} is not readable (permission denied)") from None
    except (OSError, ValueError) as exc:  # ENAMETOOLONG, ELOOP, a NUL byte in the path …
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ConfigError(f"{what}: {shown} cannot be opened ({reason})") from None
    mode = os.fstat(descriptor).st_mode
    if not stat.S_ISREG(mode):
        os.close(descriptor)
        raise ConfigError(
            f"{what}: {shown} is {_kind(mode)}, not a regular file; give the path of a file"
        )
    with os.fdopen(descriptor, "rb") as handle:
        try:
            data = handle.read(max_bytes + 1)
        except OSError as exc:
            raise ConfigError(f"{what}: {shown} cannot be read ({exc.strerror})") from None
    if len(data) > max_bytes:
        raise ConfigError(f"{what}: {shown} is larger than the {max_bytes:,} bytes allowed")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{what}: {shown} is not UTF-8 text (byte {exc.start} is {data[exc.start]:#04x}); "
            "is it a binary file?"
        ) from None


def _kind(mode: int) -> str:
    kinds = {
        stat.S_ISREG: "a file",
        stat.S_ISDIR: "a folder",
        stat.S_ISFIFO: "a FIFO",
        stat.S_ISSOCK: "a socket",
        stat.S_ISCHR: "a character device",
        stat.S_ISBLK: "a block device",
    }
    return next((name for check, name in kinds.items() if check(mode)), "not a file")


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader without aliases or duplicate keys, and with a depth limit."""

    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        problem = None
        if self.check_event(yaml.AliasEvent):
            problem = "aliases (*name) are not accepted; write the value out"
        elif self._depth >= MAX_DEPTH:
            problem = f"nested deeper than {MAX_DEPTH} levels"
        if problem:
            mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
            raise yaml.composer.ComposerError(None, None, problem, mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Hashable, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: {…}` merges a mapping written out in place (aliases are refused)
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, Hashable):
                continue  # the base constructor names an unhashable key itself
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {shorten(key)} (first on line {seen[key]}); "
                    "each key may appear once",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep)


def load_yaml(text: str, source: str) -> Any:
    """One YAML document, strictly: see :class:`_StrictLoader`. ``source`` names it."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{where}: not valid YAML ({problem})") from None
    except RecursionError:
        raise ConfigError(f"{source}: nested deeper than {MAX_DEPTH} levels") from None


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"{shorten(text, 30)} is too large for a number")
    return number


def load_json(text: str, source: str) -> Any:
    """One JSON document: no NaN or infinite numbers, at most :data:`MAX_DEPTH` deep."""
    try:
        document = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:
        raise ConfigError(f"{source}: nested deeper than {MAX_DEPTH} levels") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{source}:{exc.lineno}: not valid JSON ({exc.msg}, column {exc.colno})"
        ) from None
    except ValueError as exc:  # a refused constant or number, or an integer past 4300 digits
        problem = "an integer is too long" if "Exceeds the limit" in str(exc) else str(exc)
        raise ConfigError(f"{source}: not valid JSON ({clip(problem, 120)})") from None
    if _depth(document) > MAX_DEPTH:
        raise ConfigError(f"{source}: nested deeper than {MAX_DEPTH} levels")
    return document


def _depth(document: Any) -> int:
    """How deeply lists and objects nest (a scalar is 0), without recursion."""
    deepest, pending = 0, [(document, 1)]
    while pending:
        node, level = pending.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, level)
            children = node.values() if isinstance(node, dict) else node
            pending.extend((child, level + 1) for child in children)
    return deepest
