"""The ``cautious`` console command: the same tasks as ``invoke``, without a tasks.py.

It keeps the command line contract where Invoke's own program does not: a parser error (an
unknown task or flag, a flag without its value) is bad input, exit 2 with one line, and so is a
repeatable flag such as ``--claim`` given without a value (Invoke's parser takes that as no
flag at all). An unexpected exception outside a task is one line naming a debug log.
"""

from __future__ import annotations

import copy
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from invoke.exceptions import Exit, ParseError
from invoke.program import Program

from cautious import __version__
from cautious.cli.terminal import one_line, unexpected_error_line
from cautious.exceptions import UsageError
from cautious.tasks import ns

__all__ = ["CautiousProgram", "program"]


@contextmanager
def _parse_errors_are_bad_input(binary: str) -> Iterator[None]:
    try:
        yield
    except ParseError as exc:
        # Invoke names a flag by its repr (<Argument: duration (d)>); name it as it is typed.
        text = re.sub(
            r"<Argument: ([\w-]+)[^>]*>",
            lambda match: repr("--" + match.group(1).replace("_", "-")),
            str(exc),
        )
        raise Exit(
            one_line(f"{binary}: {text} (see `{binary} --help`)"), code=UsageError.exit_code
        ) from None


class CautiousProgram(Program):
    """Invoke's Program with the command line contract's exit codes."""

    def run(self, argv: list[str] | None = None, exit: bool = True) -> None:
        try:
            super().run(argv, exit)
        except Exception as exc:  # outside any task (tasks have their own guard)
            print(unexpected_error_line(exc), file=sys.stderr)
            if exit:
                sys.exit(1)

    def parse_core(self, argv: list[str] | None) -> None:
        with _parse_errors_are_bad_input(self.binary or "cautious"):
            super().parse_core(argv)
        self._refuse_misleading_core_flags()

    def _refuse_misleading_core_flags(self) -> None:
        """``--config`` before the task names Invoke's own settings file, not cautious.yaml
        (each task's ``--config``). ``--dry`` is refused by every task (``clean_errors``)."""
        binary = self.binary or "cautious"
        if self.args.config.value is not None:
            raise Exit(
                f"{binary}: --config goes after the task: `{binary} deploy --config "
                f"{self.args.config.value}` (before it, Invoke would read its own settings)",
                code=UsageError.exit_code,
            )

    def parse_tasks(self) -> None:
        with _parse_errors_are_bad_input(self.binary or "cautious"):
            self._refuse_repeatable_flags_without_value()
            super().parse_tasks()

    def parse_cleanup(self) -> None:
        with _parse_errors_are_bad_input(self.binary or "cautious"):
            super().parse_cleanup()

    def _refuse_repeatable_flags_without_value(self) -> None:
        assert self.collection is not None  # parse_collection ran first
        # A copy: Invoke's to_contexts pops each task's help texts, and the real parse (and
        # `--help`) must still find them.
        contexts = copy.deepcopy(self.collection).to_contexts(
            ignore_unknown_help=self.config.tasks.ignore_unknown_help
        )
        by_name = {name: ctx for ctx in contexts for name in (ctx.name, *ctx.aliases)}
        tokens = list(self.core.unparsed)
        current = None
        for index, token in enumerate(tokens):
            current = by_name.get(token, current)
            flag = current.flags.get(token) if current is not None else None
            if flag is None or flag.kind is not list:
                continue
            following = tokens[index + 1] if index + 1 < len(tokens) else None
            if following is None or following.startswith("-") or following in by_name:
                raise ParseError(f"Flag {token!r} needed value and was not given one!")


program = CautiousProgram(namespace=ns, name="Cautious", binary="cautious", version=__version__)
