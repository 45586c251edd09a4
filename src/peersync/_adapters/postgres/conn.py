"""One PostgreSQL connection for a peer: opening it, translating driver
errors at the boundary, and the transaction helper every call uses.

The connection is in autocommit mode and each call opens its own
transaction (``BEGIN ISOLATION LEVEL ...``), so a call that must read the
snapshot bound *before* its snapshot (enumeration) can do so.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import errors as pge

from peersync._adapters.sql.dialect import Dialect
from peersync._engine.errors import DatabaseLocked, InvalidURL, StorageError, TransportError

from .schema import SCHEMA

# The shared metadata statements name tables unqualified (the connection puts
# peersync's schema first on its search path); existence is asked of that
# schema alone. PostgreSQL refuses FOR UPDATE with MAX(): new ids are read
# unlocked and the ids' unique indexes refuse a racing twin.
POSTGRES = Dialect(
    paramstyle="format",
    returning=True,
    table_exists=f"SELECT 1 WHERE to_regclass('{SCHEMA}.' || ?) IS NOT NULL",
    for_update=" FOR UPDATE",
    lock_max=False,
    blob_type="bytea",
)

# Retried by the apply: its snapshot met a concurrent write, or a deadlock.
RETRYABLE = (pge.SerializationFailure, pge.DeadlockDetected)


def parse_url(url: str) -> tuple[str, str]:
    """(conninfo for psycopg, the URL without its password) of a
    ``postgresql://`` or ``postgres://`` URL; raises :class:`InvalidURL`."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        # not the ValueError's text: it quotes the "port", which may be part of a password
        raise InvalidURL("bad PostgreSQL URL: the port must be a number from 0 to 65535") from None
    if parts.scheme.lower() not in ("postgresql", "postgres"):
        raise InvalidURL(f"not a PostgreSQL URL: {url!r}")
    db = urllib.parse.unquote(parts.path.lstrip("/"))
    if not db or "/" in db:
        raise InvalidURL(f"bad PostgreSQL URL {_safe(url)!r}: name one database, postgresql://user@host:port/dbname")
    if parts.fragment:
        raise InvalidURL(f"bad PostgreSQL URL {_safe(url)!r}: no #fragment allowed")
    del port
    return "postgresql" + url[len(parts.scheme) :], _safe(url)


def _safe(url: str) -> str:
    """The URL with any password masked, for messages and ``peer.url``."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def open_connection(conninfo: str, shown: str, timeout: float) -> psycopg.Connection[Any]:
    """Connect and set the session up: UTC and ISO dates (the canonical
    forms are read in SQL), peersync's schema first on the search path."""
    try:
        conn = psycopg.connect(conninfo, autocommit=True, connect_timeout=max(1, int(timeout)))
    except psycopg.ProgrammingError as exc:
        raise InvalidURL(f"bad PostgreSQL URL {shown!r}: {_one_line(exc)}") from exc
    except psycopg.Error as exc:
        parts = urllib.parse.urlsplit(shown)
        db = urllib.parse.unquote(parts.path.lstrip("/"))
        # No SQLSTATE reaches a failed connect: the server's message (3D000) is
        # all there is. A missing database is a wrong URL, not worth a retry.
        if f'database "{db}" does not exist' in str(exc):
            where = f"{parts.hostname or 'localhost'}:{parts.port or 5432}"
            raise InvalidURL(f"no such database {db!r} on the PostgreSQL server at {where}") from exc
        raise TransportError(f"cannot connect to {shown}: {_one_line(exc)}") from exc
    try:
        conn.execute("SET TimeZone = 'UTC'")
        conn.execute("SET DateStyle = 'ISO, YMD'")
        conn.execute("SET extra_float_digits = 1")
        conn.execute("SELECT set_config('search_path', %s || ', ' || current_setting('search_path'), false)", (SCHEMA,))
    except psycopg.Error as exc:
        conn.close()
        raise StorageError(f"{shown}: {_one_line(exc)}") from exc
    return conn


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


@contextmanager
def errors(shown: str) -> Iterator[None]:
    """Driver exceptions become peersync ones (``raise ... from``)."""
    try:
        yield
    except (pge.LockNotAvailable, pge.QueryCanceled) as exc:
        raise DatabaseLocked(f"{shown}: {_one_line(exc)}") from exc
    except RETRYABLE as exc:  # met a concurrent write: the caller may run it again
        raise StorageError(f"{shown}: {_one_line(exc)}") from exc
    except psycopg.OperationalError as exc:
        raise TransportError(f"{shown}: {_one_line(exc)}") from exc
    except psycopg.Error as exc:
        raise StorageError(f"{shown}: {_one_line(exc)}") from exc


@contextmanager
def transaction(conn: psycopg.Connection[Any], isolation: str = "READ COMMITTED") -> Iterator[None]:
    """``BEGIN ISOLATION LEVEL isolation`` ... ``COMMIT``; an exception rolls
    back (when the connection still can) and propagates."""
    conn.execute(f"BEGIN ISOLATION LEVEL {isolation}")
    try:
        yield
    except BaseException:
        if not conn.closed and conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


@contextmanager
def savepoint(conn: psycopg.Connection[Any]) -> Iterator[None]:
    """A savepoint: an exception rolls back to it and propagates."""
    conn.execute("SAVEPOINT _peersync_sp")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK TO SAVEPOINT _peersync_sp")
        conn.execute("RELEASE SAVEPOINT _peersync_sp")
        raise
    conn.execute("RELEASE SAVEPOINT _peersync_sp")
