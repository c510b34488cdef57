"""What every task prints through, and how a deliberate error reaches the terminal.

A ``CautiousError`` becomes one line on stderr and its exit code — 2 for bad input, 1 for a
failure — never a traceback; Ctrl-C outside a rollout exits 130.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from invoke.exceptions import Exit
from rich.console import Console

from cautious.exceptions import CautiousError

__all__ = ["clean_errors", "console"]

P = ParamSpec("P")
R = TypeVar("R")

# Piped output (CI logs) gets a wide console instead of rich's 80-column default.
console = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 160)


def clean_errors(body: Callable[P, R]) -> Callable[P, R]:
    """Turn a CautiousError into one line on stderr and its exit code."""

    @functools.wraps(body)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return body(*args, **kwargs)
        except CautiousError as exc:
            raise Exit(f"cautious: {exc}", code=exc.exit_code) from None
        except KeyboardInterrupt:
            raise Exit("cautious: interrupted", code=130) from None

    return wrapper
