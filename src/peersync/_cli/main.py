"""The ``peersync`` command: the group in :mod:`.app`, a file per subcommand group."""

from __future__ import annotations

from . import clone, demo, inspect, manage, sync
from .app import cli, main

__all__ = ["cli", "clone", "demo", "inspect", "main", "manage", "sync"]
