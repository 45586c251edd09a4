"""The ``peersync`` command: the group in :mod:`.app`, a file per subcommand
group, each imported when its command runs (``app.COMMANDS``)."""

from __future__ import annotations

from .app import cli, main

__all__ = ["cli", "main"]
