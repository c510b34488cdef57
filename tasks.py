"""This repository's Invoke tasks: the ones every project using Cautious gets."""

from pipeline.tasks import ns

__all__ = ["ns"]
