"""The ``cautious`` console command: the same tasks as ``invoke``, without a tasks.py."""

from __future__ import annotations

from invoke.program import Program

from cautious import __version__
from cautious.tasks import ns

__all__ = ["program"]

program = Program(namespace=ns, name="Cautious", binary="cautious", version=__version__)
