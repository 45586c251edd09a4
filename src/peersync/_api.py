"""Opening databases by URL, and the module-level conveniences over them."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from ._engine.database import Database
from ._engine.model import Conflict, Status
from ._engine.registry import open_url


def connect(url: str | os.PathLike[str], **options: Any) -> Database:
    """Open a database as a peer, by URL: a plain path or ``sqlite:///path``
    (``timeout=`` seconds to wait for a lock, ``foreign_keys=``).

    peersync never creates user databases: the file must exist. Raises
    :class:`~peersync.InvalidURL` (an unknown scheme, a malformed URL),
    :class:`~peersync.ConfigurationError` (the scheme's driver is not
    installed: the message names the extra) or
    :class:`~peersync.StorageError` (not a database, unreadable).

    >>> with peersync.connect("shop.db") as db:  # doctest: +SKIP
    ...     db.provision("shop", ["customers", "orders"])
    """
    return open_url(url, **options)


def provision(url: str, scope: str, tables: Sequence[str]) -> bool:
    """Provision ``scope`` over ``tables`` in the database at ``url``."""
    with connect(url) as db:
        return db.provision(scope, tables)


def deprovision(url: str, scope: str) -> None:
    """Remove ``scope``'s tracking from the database at ``url``; data stays."""
    with connect(url) as db:
        db.deprovision(scope)


def status(url: str, scope: str | None = None) -> list[Status]:
    with connect(url) as db:
        return db.status(scope)


def conflicts(url: str, scope: str | None = None) -> list[Conflict]:
    with connect(url) as db:
        return db.conflicts(scope)
