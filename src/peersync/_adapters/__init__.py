"""Database adapters, one folder per kind, each a :class:`~peersync.Peer`
implementation registered by URL scheme (see :mod:`peersync._engine.registry`)."""
