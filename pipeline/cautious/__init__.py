"""Cautious: prove, before production, that a deployment keeps its promises.

The pipeline reads like its data flow: config → plan → run → measure → judge → report.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
