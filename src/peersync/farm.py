"""The scale-out farm: keep several servers (each over its own database) in
sync with each other, peer to peer, on an interval. ``peersync farm
CONFIG.toml`` runs it; this module is the same for your own program.

>>> from peersync.farm import Farm, load_config  # doctest: +SKIP
>>> farm = Farm(load_config("farm.toml"), on_event=lambda e: print(e.line()))  # doctest: +SKIP
>>> farm.run(once=True)  # one round of every link  # doctest: +SKIP
FarmRun(sessions=3, failed=0, abandoned=0)

See :mod:`peersync._farm.config` for the file's keys and
:mod:`peersync._farm.runner` for how links run, back off and stop.
"""

from __future__ import annotations

from ._farm.config import FarmConfig, Link, Server, load_config, parse_config
from ._farm.runner import Farm, FarmRun, SessionEvent

__all__ = ["Farm", "FarmConfig", "FarmRun", "Link", "Server", "SessionEvent", "load_config", "parse_config"]
