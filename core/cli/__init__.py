"""The command line, ``python -m core`` (see :mod:`core.cli.app`)."""
from .app import main

__all__ = ["main"]
