"""The check every test of a report folder can make: ``invoke report FOLDER`` draws each
rendered file again, byte for byte what the run wrote."""

from __future__ import annotations

from pathlib import Path

from cautious.cli import tasks
from cautious.report.registry import RENDERERS
from invoke.context import MockContext


def assert_rerenders_identically(folder: Path) -> None:
    """Delete the rendered files, run the ``report`` task on the folder, compare."""
    drawn = [r.filename for r in RENDERERS if (folder / r.filename).is_file()]
    assert "report.html" in drawn
    written = {name: (folder / name).read_bytes() for name in drawn}
    for name in written:
        (folder / name).unlink()
    tasks.report(MockContext(), str(folder))
    assert {name: (folder / name).read_bytes() for name in written} == written
