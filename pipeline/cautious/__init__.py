"""Cautious: prove, before production, that a deployment keeps its promises.

The pipeline reads like its data flow: config → plan → run → measure → judge → report.
"""

from importlib.metadata import PackageNotFoundError, version

__all__ = ["__version__"]

try:
    # The git tag, recorded in the installed metadata when the distribution was built.
    __version__ = version("cautious")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0.0.0"
