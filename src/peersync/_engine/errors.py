"""The exceptions peersync raises, split by what the caller can do about them.

::

    SyncError                      anything peersync refuses or fails to do
    ├── ConfigurationError         bad input from the caller: fix the call
    │   ├── InvalidURL             not a database URL or path peersync can open
    │   ├── ScopeError             unknown scope, or a definition that differs
    │   ├── TableError             missing table, no primary key, bad column
    │   └── AccessDenied           a served peer refused the token (missing, wrong,
    │                              revoked, another scope, or read-only for a write)
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

Each class has a stable ``code`` (like a SQLSTATE): it never changes, so a
remote peer sends it with the message and the caller's side raises the very
same class (:func:`error_to_wire`, :func:`error_from_wire`), and a caller can
branch on it. A subclass defined elsewhere travels as its nearest class here::

    code                class
    sync-error          SyncError
    configuration       ConfigurationError
    invalid-url         InvalidURL
    scope               ScopeError
    table               TableError
    access-denied       AccessDenied
    schema-mismatch     SchemaMismatch
    replica-outdated    ReplicaOutdated
    repair-needed       RepairNeeded
    protocol            ProtocolError
    transport           TransportError
    storage             StorageError
    database-locked     DatabaseLocked
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from .results import SyncResult

_BY_CODE: dict[str, type[SyncError]] = {}  # filled as the classes below are defined


class SyncError(Exception):
    """Root of every exception peersync raises on purpose.

    ``result`` is None, except when :func:`peersync.sync` in both directions
    failed in its pull half: then the push half had completed and committed,
    and ``result`` says what it did (its ``completed`` is False).
    """

    code: ClassVar[str] = "sync-error"
    result: SyncResult | None = None

    def __init_subclass__(cls, code: str | None = None, **kwargs: object) -> None:
        """A class here names its stable ``code`` (``class X(SyncError,
        code="x")``) and is registered under it; a subclass defined elsewhere
        names none and travels as its nearest class here."""
        super().__init_subclass__(**kwargs)
        if code is not None:
            if code in _BY_CODE:
                raise TypeError(f"error code {code!r} is taken by {_BY_CODE[code].__name__}")
            cls.code = code
            _BY_CODE[code] = cls


_BY_CODE[SyncError.code] = SyncError


class ConfigurationError(SyncError, code="configuration"):
    """The caller asked for something that cannot be done as stated."""


class InvalidURL(ConfigurationError, code="invalid-url"):
    """The database URL or path cannot be opened by any adapter."""


class ScopeError(ConfigurationError, code="scope"):
    """Unknown scope, or a scope whose definition differs from the one asked for."""


class TableError(ConfigurationError, code="table"):
    """A table is missing, has no primary key, or cannot be tracked."""


class AccessDenied(ConfigurationError, code="access-denied"):
    """A served peer refused the request's token: none or a wrong one (HTTP
    401), or one without the right for this scope or this call (HTTP 403).
    Nothing was read or written; the message says which."""


class SchemaMismatch(SyncError, code="schema-mismatch"):
    """Two peers hold the same scope with different shapes (fingerprints differ)."""


class ReplicaOutdated(SyncError, code="replica-outdated"):
    """The destination may have missed deletes whose tombstones were cleaned up."""


class RepairNeeded(SyncError, code="repair-needed"):
    """This database's peersync state no longer matches the file or tables it is in.

    A copied or restored file still carries its original's replica id (run
    ``peersync reidentify``, or confirm a moved file with ``--moved``); a
    table rebuilt behind peersync's back lost its triggers, so writes to it
    are no longer tracked (run ``peersync repair``). The message names the
    command; nothing was written.
    """


class ProtocolError(SyncError, code="protocol"):
    """A batch or request is malformed, truncated, forged or does not match the session."""


class TransportError(SyncError, code="transport"):
    """The remote peer could not be reached or dropped the connection; retryable."""


class StorageError(SyncError, code="storage"):
    """The database failed, is not a database, or is unusable."""


class DatabaseLocked(StorageError, code="database-locked"):
    """Another connection held the database lock past the busy timeout."""


def error_to_wire(exc: SyncError) -> dict[str, str]:
    """``{"code": ..., "message": ...}`` for ``exc``: plain data that crosses a wire.

    The code is that of the class itself, or of its nearest ancestor defined
    here. ``SyncError.result`` does not travel.

    >>> error_to_wire(ScopeError("unknown scope 'shop'"))
    {'code': 'scope', 'message': "unknown scope 'shop'"}
    """
    return {"code": type(exc).code, "message": str(exc)}


def error_from_wire(obj: object) -> SyncError:
    """The exception :func:`error_to_wire` described: the very same class, with its message.

    Returns (does not raise) the rebuilt exception. An unknown code gives a
    :class:`ProtocolError` that names it and keeps the message; anything but
    a dict of exactly ``code`` and ``message``, both strings, gives a
    :class:`ProtocolError` saying so.
    """
    if type(obj) is not dict or set(obj) != {"code", "message"}:
        return ProtocolError("malformed error: not a map of exactly code and message")
    code, message = obj["code"], obj["message"]
    if type(code) is not str or type(message) is not str:
        return ProtocolError("malformed error: code and message must be strings")
    cls = _BY_CODE.get(code)
    if cls is None:
        return ProtocolError(f"remote error with unknown code {code!r}: {message}")
    return cls(message)
