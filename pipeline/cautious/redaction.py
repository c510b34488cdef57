"""Secret values, and the one place that hides them in everything Cautious writes.

An environment variable is secret when its name contains ``TOKEN``, ``SECRET``, ``PASSWORD`` or
``KEY`` (any case), or when the configuration declares it ``{value: …, secret: true}``. Loading
a configuration remembers its secret values (and those of secret-looking variables in the
process environment, such as a CI token); the terminal, error lines, the journal, reports and
debug logs pass their text through :func:`redact`, which replaces each remembered value with
:data:`REDACTED`. Values shorter than :data:`MIN_SEARCHED_LENGTH` are still masked wherever
their key is shown, but not searched for in free text: they are too likely to be ordinary words.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

__all__ = [
    "MIN_SEARCHED_LENGTH",
    "REDACTED",
    "looks_secret",
    "redact",
    "redact_data",
    "remember",
    "remember_environment",
]

REDACTED = "[redacted]"
MIN_SEARCHED_LENGTH = 6
_SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|KEY", re.IGNORECASE)

_lock = threading.Lock()
_values: set[str] = set()
_pattern: list[re.Pattern[str] | None] = [None]  # one alternation of every value, longest first

T = TypeVar("T")


def looks_secret(name: str) -> bool:
    """Whether a variable's name says it holds a secret (``API_TOKEN``, ``db_password``)."""
    return bool(_SECRET_NAME.search(name))


def remember(values: Iterable[str]) -> None:
    """Hide these values from now on, in this process, wherever text is redacted."""
    fresh = {value for value in values if len(value) >= MIN_SEARCHED_LENGTH} - _values
    if not fresh:
        return
    with _lock:
        _values.update(fresh)
        ordered = sorted(_values, key=len, reverse=True)
        _pattern[0] = re.compile("|".join(map(re.escape, ordered)))


def remember_environment(environ: Mapping[str, str]) -> None:
    """Hide the values of secret-looking variables of a process environment (CI tokens)."""
    remember(value for name, value in environ.items() if looks_secret(name))


def redact(text: str) -> str:
    """``text`` with every remembered secret value replaced by :data:`REDACTED`."""
    pattern = _pattern[0]
    return pattern.sub(REDACTED, text) if pattern is not None else text


def redact_data(data: T) -> T:
    """Plain data (what JSON holds) with every string redacted; the structure is kept."""
    if _pattern[0] is None:
        return data
    return _redact_any(data)  # type: ignore[no-any-return]


def _redact_any(data: Any) -> Any:
    if isinstance(data, str):
        return redact(data)
    if isinstance(data, Mapping):
        return {_redact_any(key): _redact_any(value) for key, value in data.items()}
    if isinstance(data, list):
        return [_redact_any(item) for item in data]
    if isinstance(data, tuple):
        return tuple(_redact_any(item) for item in data)
    return data
