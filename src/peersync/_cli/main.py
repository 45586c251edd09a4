"""The ``peersync`` command: the group in :mod:`.app`, a file per subcommand group."""

from __future__ import annotations

from . import clone, demo, farm, inspect, manage, serve, sync, token
from .app import cli, main

__all__ = ["cli", "clone", "demo", "farm", "inspect", "main", "manage", "serve", "sync", "token"]
