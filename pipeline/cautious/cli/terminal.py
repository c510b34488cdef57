"""What every task prints through, and how an error reaches the terminal.

A ``CautiousError`` becomes one line on stderr and its exit code — 2 for bad input, 1 for a
failure — never a traceback; Ctrl-C outside a rollout exits 130. Any other exception is a bug:
its traceback goes to a debug log, and the terminal gets one line naming the log (exit 1).
Everything printed passes through :func:`cautious.redaction.redact`, so no secret value reaches
the terminal or a CI log.
"""

from __future__ import annotations

import functools
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, ParamSpec, TypeVar

from invoke.context import Context
from invoke.exceptions import Exit, Failure
from rich.console import Console

from cautious.exceptions import CautiousError, UsageError
from cautious.inputs import clip, printable
from cautious.redaction import redact

__all__ = [
    "DEBUG_DIR_ENV_VAR",
    "MAX_LINE",
    "clean_errors",
    "console",
    "one_line",
    "unexpected_error_line",
]

P = ParamSpec("P")
R = TypeVar("R")

MAX_LINE = 300  # the longest error line: it must fit a CI annotation and a glance
DEBUG_DIR_ENV_VAR = "CAUTIOUS_DEBUG_DIR"


class _RedactedStderr:
    """sys.stderr as it is at each write (pytest and rich swap it), with secrets redacted."""

    @staticmethod
    def _target() -> IO[str]:
        stream = sys.stderr
        return getattr(stream, "rich_proxied_file", stream)

    def write(self, text: str) -> int:
        return self._target().write(redact(text))

    def __getattr__(self, name: str) -> Any:  # isatty, flush, fileno, encoding …
        return getattr(self._target(), name)


# Piped output (CI logs) gets a wide console instead of rich's 80-column default.
console = Console(
    file=_RedactedStderr(),  # type: ignore[arg-type]
    highlight=False,
    width=None if sys.stderr.isatty() else 160,
)


def one_line(message: str) -> str:
    """A message as one line of at most :data:`MAX_LINE` characters, secrets redacted."""
    return clip(printable(" ".join(redact(message).split())), MAX_LINE)


def unexpected_error_line(error: BaseException) -> str:
    """Save ``error``'s traceback to a debug log; the line that names the log."""
    summary = clip(f"{type(error).__name__}: {error}", 120)
    try:
        folder = Path(os.environ.get(DEBUG_DIR_ENV_VAR) or Path(tempfile.gettempdir()) / "cautious")
        folder.mkdir(parents=True, exist_ok=True)
        log = folder / f"error-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}.log"
        log.write_text(redact("".join(traceback.format_exception(error))), encoding="utf-8")
        where = f"the traceback is in {log}"
    except OSError as exc:
        where = f"the traceback could not be saved ({exc.strerror})"
    return one_line(f"cautious: unexpected error ({summary}); {where}; please report it")


# `invoke --dry TASK` (or cautious) would run the task for real: --dry only echoes shell commands.
_DRY_REFUSED = (
    "--dry only echoes shell commands, and these tasks do their work in Python; "
    "leave it out (`deploy --dry-run` prints the plan and changes nothing)"
)


def clean_errors(body: Callable[P, R]) -> Callable[P, R]:
    """Turn any exception of a task into one line on stderr and an exit code."""

    @functools.wraps(body)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        context = args[0] if args else None
        if isinstance(context, Context) and context.config.run.dry:
            raise Exit(f"cautious: {_DRY_REFUSED}", code=UsageError.exit_code)
        try:
            return body(*args, **kwargs)
        except CautiousError as exc:
            raise Exit(one_line(f"cautious: {exc}"), code=exc.exit_code) from None
        except Exit as exc:
            raise Exit(one_line(exc.message) if exc.message else None, code=exc.code) from None
        except Failure:
            raise  # a command run with warn=False failed: Invoke reports it
        except KeyboardInterrupt:
            raise Exit("cautious: interrupted", code=130) from None
        except Exception as exc:
            raise Exit(unexpected_error_line(exc), code=1) from None

    return wrapper
