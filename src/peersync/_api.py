"""Opening databases by URL, and the module-level conveniences over them."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from ._adapters.sqlite import sqlite_path
from ._engine.database import Database
from ._engine.errors import ConfigurationError, InvalidURL
from ._engine.model import Conflict, Status
from ._engine.names import NamesArg
from ._engine.registry import open_url, scheme_of


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


def provision(url: str, scope: str, tables: Sequence[str], *, names: NamesArg = None) -> bool:
    """Provision ``scope`` over ``tables`` in the database at ``url``, with
    its local ``names`` where they differ (see :meth:`Database.provision`)."""
    with connect(url) as db:
        return db.provision(scope, tables, names=names)


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


def clone(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    scope: str,
    *,
    timeout: float = 5.0,
    token: str | None = None,
    ca: str | None = None,
) -> Status:
    """Make ``dst``, a new SQLite database, from a consistent snapshot of
    ``src``'s replica of ``scope``: a new replica that knows what ``src``
    knew, so the first sync between them sends nothing. Other scopes of
    ``src`` are not carried as replicas; ``dst`` must not exist. Returns the
    new replica's status. See :func:`peersync._adapters.sqlite.clone.clone_replica`
    for what is raised; on any error no ``dst`` is left behind.

    ``src`` may be a PostgreSQL or MariaDB database (``postgresql://``,
    ``mariadb://``, ``mysql://``): the clone then holds the scope's tables in
    its global names, with the rows and knowledge of the source's snapshot
    bound (:func:`peersync._adapters.sqlite.clone.clone_from_server`).

    ``src`` may be a served database (``http://`` or ``https://``, with
    ``token`` and ``ca`` as for :func:`connect`; a read token suffices): the
    server streams a snapshot of the scope alone (its other tables are not
    sent), and a stream cut short raises :class:`~peersync.TransportError`.

    >>> peersync.clone("server1.db", "server2.db", "shop").replica_id  # doctest: +SKIP
    >>> peersync.clone("https://sync.example.com", "laptop.db", "shop", token="pst_...")  # doctest: +SKIP
    """
    # Imported here: opening and syncing databases (``peersync sync``) need none of it.
    from ._adapters.sql.snapshot import SnapshotSource
    from ._adapters.sqlite.clone import build_clone, clone_from_server, clone_replica

    for url in (src, dst):
        if not isinstance(url, (str, os.PathLike)):
            raise InvalidURL(f"not a database path or URL: {url!r}")
    if isinstance(src, str) and src.lower().startswith(("http://", "https://")):
        from ._transports.http.client import HTTPPeer

        target = sqlite_path(os.fspath(dst))
        with HTTPPeer(src, token=token, ca=ca) as peer:

            def fill(tmp: str) -> None:
                with open(tmp, "wb") as out:
                    peer.snapshot(scope, out)

            return build_clone(target, scope, fill, timeout=timeout)
    if scheme_of(os.fspath(dst)) != "sqlite":
        raise ConfigurationError(f"clone makes a new SQLite database: give DST as a file path, not {dst}")
    target = sqlite_path(os.fspath(dst))
    if scheme_of(os.fspath(src)) == "sqlite":
        return clone_replica(sqlite_path(os.fspath(src)), target, scope, timeout=timeout)
    with connect(src) as db:
        if not isinstance(db, SnapshotSource):
            raise ConfigurationError(f"cannot clone from {src}: it gives no snapshot (clone a SQLite, PostgreSQL,"
                                     " MariaDB or served database)")  # fmt: skip
        return clone_from_server(db, target, scope, timeout=timeout)
