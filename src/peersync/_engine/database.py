"""The public face of a database opened by :func:`peersync.connect`: a
:class:`~peersync.Peer` plus the management calls every adapter offers.

Each adapter implements it (``SQLitePeer`` for files today); users type their
code against this protocol, never against an adapter's class.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from .model import Conflict, RepairReport, Status
from .names import NamesArg
from .peer import Peer


@runtime_checkable
class Database(Peer, Protocol):
    """A database that holds replicas of one or more scopes.

    >>> with peersync.connect("shop.db") as db:  # doctest: +SKIP
    ...     db.provision("shop", ["customers", "orders"])
    """

    def provision(self, scope: str, tables: Sequence[str], *, names: NamesArg = None) -> bool:
        """Track ``tables`` as ``scope``; True if it was created, False if it
        already existed with the same definition. Transactional: nothing is
        left behind by a failure. Raises :class:`~peersync.TableError` (a
        missing table or column, no primary key), :class:`~peersync.ScopeError`
        (the scope exists with other tables or names) and
        :class:`~peersync.ConfigurationError` (a bad names file).

        ``tables`` are the scope's global names. ``names`` gives this
        database's own names where they differ: a mapping or the path of a
        TOML file, ``{"Album": {"table": "album", "columns": {"AlbumId":
        "album_id"}}}``. Batches, schemas and conflicts use the global names;
        this database's SQL, triggers and tables keep its own."""
        ...

    def deprovision(self, scope: str) -> None:
        """Remove ``scope``'s tracking; the data stays."""
        ...

    def scopes(self) -> list[str]:
        """The names of the scopes provisioned here."""
        ...

    def reidentify(self, scope: str, *, moved: bool = False) -> bytes:
        """Give a copied or restored replica of ``scope`` a new replica id
        (or, with ``moved``, confirm that this is the same database moved)."""
        ...

    def migrate(self, scope: str, tables: Sequence[str] | None = None) -> RepairReport:
        """Take a schema change into ``scope`` keeping every row's tracking."""
        ...

    def repair(self, scope: str, *, restamp: bool = False) -> RepairReport:
        """Recreate lost tracking (triggers) and record the rows changed meanwhile."""
        ...

    def compact(self, scope: str | None = None) -> None:
        """Maintenance: drop superseded change-log entries. Safe at any time."""
        ...

    def status(self, scope: str | None = None) -> list[Status]:
        """Status of ``scope``, or of every scope. Read-only."""
        ...

    def conflicts(self, scope: str | None = None, *, limit: int | None = None) -> list[Conflict]:
        """The conflict log, newest first. Read-only."""
        ...

    def __enter__(self) -> Database: ...

    def __exit__(self, *exc: object) -> None: ...
