"""The MariaDB/MySQL connection: URL parsing, the driver (PyMySQL), error
translation and the one transaction helper every call uses.

PyMySQL is a pure-Python driver: it installs wherever pip does, with no
client library or compiler (mysqlclient and MariaDB Connector/Python build
against libmariadb); bench/mysql_drivers.py has the throughput figures.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

import pymysql
import pymysql.cursors

from peersync._adapters.sql.dialect import Dialect
from peersync._engine.errors import DatabaseLocked, InvalidURL, StorageError, TransportError
from peersync._engine.registry import is_loopback

# Server error numbers peersync reacts to.
ER_LOCK_WAIT_TIMEOUT = 1205
ER_LOCK_DEADLOCK = 1213
ER_BAD_DB_ERROR = 1049
ER_ACCESS_DENIED = 1045
_LOCKS = (ER_LOCK_WAIT_TIMEOUT, ER_LOCK_DEADLOCK)
# Client-side: the server cannot be reached or the connection dropped.
_GONE = (2003, 2006, 2013, 2055)

# Every session peersync opens: strict (a value that does not fit is an
# error, never truncated), UTC (TIMESTAMP columns are instants: read and
# written in UTC they travel exactly), binary-safe names.
SESSION_SQL_MODE = "STRICT_ALL_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION"

_KEY = re.compile(r"\bkey\b")


@dataclass(frozen=True)
class MySQLDialect(Dialect):
    """``%s`` placeholders, and ``key`` (a column of the shared conflict log)
    quoted: it is a reserved word in MySQL and MariaDB. Ids come from
    ``lastrowid``: MySQL has no ``RETURNING`` at all."""

    paramstyle: str = "format"
    returning: bool = False
    table_exists: str = "SELECT 1 FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = ?"
    for_update: str = " FOR UPDATE"
    quote_char: str = "`"
    blob_type: str = "LONGBLOB"

    def sql(self, statement: str) -> str:
        return super().sql(_KEY.sub("`key`", statement))


MYSQL = MySQLDialect()


@dataclass(frozen=True)
class Target:
    """Where a ``mysql://`` or ``mariadb://`` URL points."""

    host: str
    port: int
    user: str
    password: str
    database: str

    @property
    def url(self) -> str:
        return f"mysql://{urllib.parse.quote(self.user)}@{self.host}:{self.port}/{self.database}"


def parse_url(url: str) -> Target:
    """``mysql://user:password@host:port/database`` (also ``mariadb://``).
    Raises :class:`~peersync.InvalidURL`."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port or 3306
    except ValueError:
        # not the ValueError's text: it quotes the "port", which may be part of a password
        raise InvalidURL(f"bad MySQL URL {_safe(url)!r}: the port must be a number from 0 to 65535") from None
    if parts.scheme.lower() not in ("mysql", "mariadb"):
        raise InvalidURL(f"not a MySQL URL: {_safe(url)!r}")
    database = urllib.parse.unquote(parts.path.lstrip("/"))
    if not database or "/" in database:
        raise InvalidURL(f"bad MySQL URL {_safe(url)!r}: name one database, as in mysql://user@host/db")
    if parts.query or parts.fragment:
        raise InvalidURL(f"bad MySQL URL {_safe(url)!r}: options are not supported")
    return Target(
        parts.hostname or "127.0.0.1",
        port,
        urllib.parse.unquote(parts.username or "root"),
        urllib.parse.unquote(parts.password or ""),
        database,
    )


def _safe(url: str) -> str:
    """``url`` with its password masked, for messages (the URL may not even
    parse: everything between the user name and the last ``@`` is hidden)."""
    scheme, sep, rest = url.partition("://")
    auth, at, tail = rest.rpartition("@")
    if not sep or not at or ":" not in auth:
        return url
    return f"{scheme}://{auth.split(':', 1)[0]}:***@{tail}"


def errno(exc: BaseException) -> int:
    args = getattr(exc, "args", ())
    return args[0] if args and isinstance(args[0], int) else 0


class Conn:
    """A PyMySQL connection with the ``execute`` the shared metadata
    statements expect (``conn.execute(sql, params)`` returns a cursor)."""

    def __init__(self, target: Target, *, timeout: float) -> None:
        self.target = target
        try:
            self.raw = pymysql.connect(
                host=target.host,
                port=target.port,
                user=target.user,
                password=target.password,
                database=target.database,
                autocommit=True,
                charset="utf8mb4",
                connect_timeout=max(1, int(timeout)),
                init_command=f"SET SESSION sql_mode = '{SESSION_SQL_MODE}', time_zone = '+00:00'",
                # Left to itself PyMySQL offers TLS to any server that takes
                # it, unverified, and builds a TLS context for every connect
                # (about 0.1 s) even when the server has none. A loopback
                # connection never leaves this machine: no TLS there.
                ssl_disabled=is_loopback(target.host),
            )
        except pymysql.err.OperationalError as exc:
            code = errno(exc)
            if code in _GONE:
                raise TransportError(
                    f"cannot reach MySQL server at {target.host}:{target.port}: {exc.args[-1]}"
                ) from exc
            if code == ER_BAD_DB_ERROR:
                raise InvalidURL(
                    f"no such database {target.database!r} on the MySQL server at {target.host}:{target.port}"
                ) from exc
            raise StorageError(f"cannot open {target.url}: {exc.args[-1]}") from exc
        except pymysql.err.MySQLError as exc:
            raise StorageError(f"cannot open {target.url}: {exc}") from exc
        self.lock_timeout = max(1, int(timeout))
        self.raw.cursor().execute(f"SET SESSION innodb_lock_wait_timeout = {self.lock_timeout}")
        self.in_txn = False

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> Any:
        cur = self.raw.cursor()
        cur.execute(sql, params if params else None)
        return cur

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self.raw.cursor().executemany(sql, rows)

    def stream(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> Any:
        """An unbuffered cursor: rows arrive as they are read."""
        cur = self.raw.cursor(pymysql.cursors.SSCursor)
        cur.execute(sql, params if params else None)
        return cur

    def close(self) -> None:
        with suppress(pymysql.err.Error):
            self.raw.close()

    @contextmanager
    def errors(self) -> Iterator[None]:
        """Driver exceptions as peersync's, at this boundary."""
        try:
            yield
        except pymysql.err.MySQLError as exc:
            code = errno(exc)
            if code in _LOCKS:
                raise DatabaseLocked(f"{self.target.url}: {exc.args[-1]}") from exc
            if code in _GONE:
                raise TransportError(f"{self.target.url}: connection lost: {exc.args[-1]}") from exc
            raise StorageError(f"{self.target.url}: {exc.args[-1] if exc.args else exc}") from exc

    @contextmanager
    def txn(self, *, isolation: str = "REPEATABLE READ", read_only: bool = False) -> Iterator[Conn]:
        """One transaction; nested calls join the open one. Commits when the
        block ends normally, rolls back on any exception (which propagates,
        translated by :meth:`errors`)."""
        if self.in_txn:
            yield self
            return
        with self.errors():
            self.execute(f"SET TRANSACTION ISOLATION LEVEL {isolation}")
            self.execute("START TRANSACTION" + (" WITH CONSISTENT SNAPSHOT, READ ONLY" if read_only else ""))
            self.in_txn = True
            try:
                yield self
            except BaseException:
                self.in_txn = False
                with suppress(pymysql.err.Error):
                    self.raw.rollback()
                raise
            self.in_txn = False
            self.raw.commit()

    @contextmanager
    def savepoint(self, name: str = "peersync_sp") -> Iterator[None]:
        """A savepoint inside the open transaction: an exception rolls back to
        it. Some errors (a deadlock) roll the whole transaction back, the
        savepoint with it: then the rollback to it fails, and the original
        error is what the caller gets (the transaction is over either way)."""
        self.execute(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            with suppress(pymysql.err.MySQLError):
                self.execute(f"ROLLBACK TO SAVEPOINT {name}")
            raise
        self.execute(f"RELEASE SAVEPOINT {name}")


q = MYSQL.quote
