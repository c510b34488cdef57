"""The check every test of a report folder can make: ``invoke report FOLDER`` draws each
rendered file again, byte for byte what the run wrote."""

from __future__ import annotations

from pathlib import Path

from cautious.cli import tasks
from cautious.report.registry import RENDERERS
from invoke.context import MockContext


def assert_rerenders_identically(folder: Path) -> None:
    """Delete the rendered files, run the ``report`` task on the folder, compare."""
    written = {r.filename: (folder / r.filename).read_bytes() for r in RENDERERS}
    for name in written:
        (folder / name).unlink()
    tasks.report(MockContext(), str(folder))
    assert {name: (folder / name).read_bytes() for name in written} == written
