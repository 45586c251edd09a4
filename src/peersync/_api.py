"""Opening databases by URL, and the module-level conveniences over them."""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Sequence

from ._adapters.sqlite.clone import clone_replica
from ._adapters.sqlite.peer import SQLitePeer
from ._engine.errors import InvalidURL
from ._engine.model import Conflict, Status

Database = SQLitePeer


def sqlite_path(url: str) -> str:
    """The file path of a SQLite URL (``sqlite:///path``) or plain path."""
    if "://" not in url:
        return url
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "sqlite":
        raise InvalidURL(f"unsupported database URL {url!r}: this version syncs SQLite files (sqlite:///path)")
    if parts.netloc not in ("", "localhost"):
        raise InvalidURL(f"bad SQLite URL {url!r}: write sqlite:///relative/path or sqlite:////absolute/path")
    path = urllib.parse.unquote(parts.path)
    # sqlite:///rel/path -> "/rel/path" would be absolute; follow SQLAlchemy:
    # three slashes mean a relative path, four an absolute one.
    path = path[1:] if path.startswith("/") else path
    if not path:
        raise InvalidURL(f"bad SQLite URL {url!r}: no path")
    return path


def connect(url: str | os.PathLike[str], *, timeout: float = 5.0, foreign_keys: bool = True) -> Database:
    """Open a database as a peer: a path or ``sqlite:///path``.

    The file must exist (peersync never creates user databases). Raises
    :class:`~peersync.InvalidURL` or :class:`~peersync.StorageError`.

    >>> with peersync.connect("shop.db") as db:  # doctest: +SKIP
    ...     db.provision("shop", ["customers", "orders"])
    """
    if not isinstance(url, (str, os.PathLike)):
        raise InvalidURL(f"not a database path or URL: {url!r}")
    return SQLitePeer(sqlite_path(os.fspath(url)), timeout=timeout, foreign_keys=foreign_keys)


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


def clone(src: str | os.PathLike[str], dst: str | os.PathLike[str], scope: str, *, timeout: float = 5.0) -> Status:
    """Make ``dst``, a new database, from a consistent snapshot of ``src``'s
    replica of ``scope``: a new replica that knows what ``src`` knew, so the
    first sync between them sends nothing. Other scopes of ``src`` are not
    carried as replicas; ``dst`` must not exist. Returns the new replica's
    status. See :func:`peersync._adapters.sqlite.clone.clone_replica` for what
    is raised; on any error no ``dst`` is left behind.

    >>> peersync.clone("server1.db", "server2.db", "shop").replica_id  # doctest: +SKIP
    """
    for url in (src, dst):
        if not isinstance(url, (str, os.PathLike)):
            raise InvalidURL(f"not a database path or URL: {url!r}")
    return clone_replica(sqlite_path(os.fspath(src)), sqlite_path(os.fspath(dst)), scope, timeout=timeout)
