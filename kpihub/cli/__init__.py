"""The ``kpihub`` command. Each sub-command lives in its own module."""

from kpihub.cli.main import cli, main

__all__ = ["cli", "main"]
