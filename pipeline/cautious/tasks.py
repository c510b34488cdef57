"""The Invoke collection every project using Cautious gets: ``from cautious.tasks import ns``."""

from cautious.cli.tasks import ns

__all__ = ["ns"]
