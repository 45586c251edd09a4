"""The exceptions peersync raises, split by what the caller can do about them.

::

    SyncError                      anything peersync refuses or fails to do
    ├── ConfigurationError         bad input from the caller: fix the call
    │   ├── InvalidURL             not a database URL or path peersync can open
    │   ├── ScopeError             unknown scope, or a definition that differs
    │   └── TableError             missing table, no primary key, bad column
    ├── SchemaMismatch             two peers disagree on a scope's shape
    ├── ReplicaOutdated            tombstones this peer never saw were cleaned up:
    │                              reinitialize it (or run a full recovery)
    ├── RepairNeeded               this database's tracking no longer matches its file or
    │                              tables (a copy, a restored backup, a rebuilt table): run
    │                              the command the message names (reidentify, repair)
    ├── ProtocolError              a malformed, truncated, forged or mismatched batch
    ├── TransportError             the peer could not be reached: retry later
    └── StorageError               the database failed, is locked, or is not a database
        └── DatabaseLocked         another writer held the lock past the timeout

Driver exceptions (``sqlite3.Error`` and friends) never leak: adapters
translate them at the boundary with ``raise ... from``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .results import SyncResult


class SyncError(Exception):
    """Root of every exception peersync raises on purpose.

    ``result`` is None, except when :func:`peersync.sync` in both directions
    failed in its pull half: then the push half had completed and committed,
    and ``result`` says what it did (its ``completed`` is False).
    """

    result: SyncResult | None = None


class ConfigurationError(SyncError):
    """The caller asked for something that cannot be done as stated."""


class InvalidURL(ConfigurationError):
    """The database URL or path cannot be opened by any adapter."""


class ScopeError(ConfigurationError):
    """Unknown scope, or a scope whose definition differs from the one asked for."""


class TableError(ConfigurationError):
    """A table is missing, has no primary key, or cannot be tracked."""


class SchemaMismatch(SyncError):
    """Two peers hold the same scope with different shapes (fingerprints differ)."""


class ReplicaOutdated(SyncError):
    """The destination may have missed deletes whose tombstones were cleaned up."""


class RepairNeeded(SyncError):
    """This database's peersync state no longer matches the file or tables it is in.

    A copied or restored file still carries its original's replica id (run
    ``peersync reidentify``, or confirm a moved file with ``--moved``); a
    table rebuilt behind peersync's back lost its triggers, so writes to it
    are no longer tracked (run ``peersync repair``). The message names the
    command; nothing was written.
    """


class ProtocolError(SyncError):
    """A batch or request is malformed, truncated, forged or does not match the session."""


class TransportError(SyncError):
    """The remote peer could not be reached or dropped the connection; retryable."""


class StorageError(SyncError):
    """The database failed, is not a database, or is unusable."""


class DatabaseLocked(StorageError):
    """Another connection held the database lock past the busy timeout."""
