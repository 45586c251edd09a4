"""The ``peersync`` command: the group in :mod:`.app`, a file per subcommand group."""

from __future__ import annotations

from . import clone, demo, inspect, manage, serve, sync, token
from .app import cli, main

__all__ = ["cli", "clone", "demo", "inspect", "main", "manage", "serve", "sync", "token"]
