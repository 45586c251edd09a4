"""The two servers as the server benchmark sees them: databases made and
dropped per measurement, a plain driver connection, and each driver's own
bulk load (the baseline of the initial sync into a server).

PostgreSQL: ``$PEERSYNC_PG_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``),
baseline ``COPY ... FROM STDIN`` through psycopg. MariaDB: ``$PEERSYNC_MYSQL``
(default ``mysql://root@127.0.0.1:3306``), baseline multi-row ``INSERT`` of
1,000 rows a statement through PyMySQL (``LOAD DATA LOCAL`` is measured
beside it when the server allows it; the faster of the two is the baseline).
"""

from __future__ import annotations

import io
import os
import urllib.parse
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

PG_URL = os.environ.get("PEERSYNC_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
MY_URL = os.environ.get("PEERSYNC_MYSQL", "mysql://root@127.0.0.1:3306")

Row = tuple[Any, ...]


class Postgres:
    name = "PostgreSQL"
    key = "pg"
    ph = "%s"
    schema = "CREATE TABLE item (id bigint PRIMARY KEY, name text, note text, qty integer, price double precision)"
    upsert = "INSERT INTO item VALUES (%s, 'w', 'writer', %s, 1.0) ON CONFLICT (id) DO UPDATE SET qty = excluded.qty"

    def connect(self, url: str, *, autocommit: bool = False) -> Any:
        import psycopg

        return psycopg.connect(url, autocommit=autocommit)

    @contextmanager
    def database(self) -> Iterator[str]:
        import psycopg

        name = f"peersync_bench_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(PG_URL, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        url = PG_URL.rpartition("/")[0] + "/" + name
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(self.schema)
            yield url
        finally:
            with psycopg.connect(PG_URL, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def bulk_load(self, url: str, rows: Iterable[Row]) -> None:
        """The baseline: one ``COPY`` in one transaction."""
        with self.connect(url) as conn, conn.cursor().copy("COPY item FROM STDIN") as cp:
            for r in rows:
                cp.write_row(r)

    def server_version(self) -> str:
        with self.connect(PG_URL) as conn:
            return "PostgreSQL " + str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]

    def deadlock(self) -> type[BaseException]:
        import psycopg

        return psycopg.errors.DeadlockDetected


class MariaDB:
    name = "MariaDB"
    key = "my"
    ph = "%s"
    schema = "CREATE TABLE item (id bigint PRIMARY KEY, name varchar(64), note varchar(128), qty integer, price double)"
    upsert = "INSERT INTO item VALUES (%s, 'w', 'writer', %s, 1.0) ON DUPLICATE KEY UPDATE qty = VALUES(qty)"

    def _target(self, url: str) -> dict[str, Any]:
        p = urllib.parse.urlsplit(url)
        return {
            "host": p.hostname or "127.0.0.1",
            "port": p.port or 3306,
            "user": urllib.parse.unquote(p.username or "root"),
            "password": urllib.parse.unquote(p.password or ""),
            "database": p.path.lstrip("/") or None,
        }

    def connect(self, url: str, *, autocommit: bool = False) -> Any:
        import pymysql

        return pymysql.connect(**self._target(url), autocommit=autocommit, ssl_disabled=True, local_infile=True)

    @contextmanager
    def database(self) -> Iterator[str]:
        name = f"peersync_bench_{uuid.uuid4().hex[:10]}"
        admin = self.connect(MY_URL, autocommit=True)
        admin.cursor().execute(f"CREATE DATABASE {name}")
        url = f"{MY_URL.rstrip('/')}/{name}"
        try:
            conn = self.connect(url, autocommit=True)
            conn.cursor().execute(self.schema)
            conn.close()
            yield url
        finally:
            admin.cursor().execute(f"DROP DATABASE IF EXISTS {name}")
            admin.close()

    def bulk_load(self, url: str, rows: Iterable[Row], *, chunk: int = 1000) -> None:
        """The baseline: multi-row ``INSERT`` statements of ``chunk`` rows, one transaction."""
        conn = self.connect(url)
        cur = conn.cursor()
        # PyMySQL's executemany rewrites an INSERT ... VALUES into multi-row statements.
        sql = "INSERT INTO item VALUES (%s, %s, %s, %s, %s)"
        buf: list[Row] = []
        for r in rows:
            buf.append(r)
            if len(buf) == chunk:
                cur.executemany(sql, buf)
                buf = []
        if buf:
            cur.executemany(sql, buf)
        conn.commit()
        conn.close()

    def load_data(self, url: str, rows: Iterable[Row]) -> None:
        """``LOAD DATA LOCAL INFILE`` of a tab-separated file written first (its writing timed too)."""
        import tempfile

        with tempfile.NamedTemporaryFile("w", suffix=".tsv", delete=False, encoding="utf-8") as f:
            out = io.StringIO()
            for r in rows:
                out.write("\t".join(str(v) for v in r))
                out.write("\n")
                if out.tell() > 1 << 20:
                    f.write(out.getvalue())
                    out = io.StringIO()
            f.write(out.getvalue())
            path = f.name
        try:
            conn = self.connect(url)
            conn.cursor().execute(f"LOAD DATA LOCAL INFILE '{path}' INTO TABLE item")
            conn.commit()
            conn.close()
        finally:
            os.remove(path)

    def hold_read_view(self) -> Any:
        """A connection holding a consistent snapshot open (close it to end it): purge waits."""
        conn = self.connect(MY_URL)
        conn.cursor().execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
        conn.cursor().execute("SELECT 1")
        return conn

    def server_version(self) -> str:
        conn = self.connect(MY_URL, autocommit=True)
        cur = conn.cursor()
        cur.execute("SELECT version()")
        v = str(cur.fetchone()[0])
        conn.close()
        return "MariaDB " + v

    def deadlock(self) -> type[BaseException]:
        import pymysql

        return pymysql.err.OperationalError


SERVERS: dict[str, Any] = {"pg": Postgres, "my": MariaDB}
