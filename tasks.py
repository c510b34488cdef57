"""This repository's Invoke tasks: the ones every project using Cautious gets."""

from cautious.tasks import ns

__all__ = ["ns"]
