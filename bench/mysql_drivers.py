"""Which MySQL/MariaDB driver peersync uses: fetch and bulk-insert throughput.

Each installed driver loads N rows (default 1,000,000) of a peersync-like
shape (an integer key, a short text, a float, an integer and a 16-byte
binary) into a fresh table with multi-row INSERTs of 1,000 rows (the driver's
``executemany`` where it rewrites into multi-row statements, else one
statement built by hand), then reads them all back with an unbuffered cursor
where the driver has one. Prints rows per second for each, and the ratio to
the fastest.

    python bench/mysql_drivers.py [--rows N] [--url mysql://root@127.0.0.1:3306/]
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

CHUNK = 1000


def rows(n: int) -> Iterator[tuple[Any, ...]]:
    for i in range(n):
        yield (i, f"name {i} of the bench", i * 0.5, i * 7 % 1000, i.to_bytes(16, "big"))


def chunks(n: int) -> Iterator[list[tuple[Any, ...]]]:
    buf: list[tuple[Any, ...]] = []
    for r in rows(n):
        buf.append(r)
        if len(buf) == CHUNK:
            yield buf
            buf = []
    if buf:
        yield buf


def connect(name: str, host: str, port: int, user: str, password: str, db: str) -> Any:
    if name == "PyMySQL":
        import pymysql

        return pymysql.connect(host=host, port=port, user=user, password=password, database=db, autocommit=False)
    if name == "mysqlclient":
        import MySQLdb

        return MySQLdb.connect(host=host, port=port, user=user, password=password, database=db, autocommit=False)
    if name == "mariadb":
        import mariadb

        return mariadb.connect(host=host, port=port, user=user, password=password, database=db, autocommit=False)
    import mysql.connector

    return mysql.connector.connect(host=host, port=port, user=user, password=password, database=db, autocommit=False)


DISTS = {
    "PyMySQL": "PyMySQL",
    "mysqlclient": "mysqlclient",
    "mariadb": "mariadb",
    "mysql-connector": "mysql-connector-python",
}
MODULES = {"PyMySQL": "pymysql", "mysqlclient": "MySQLdb", "mariadb": "mariadb", "mysql-connector": "mysql.connector"}
INSERT = "INSERT INTO bench (id, name, price, qty, tag) VALUES "


def load(name: str, conn: Any, n: int) -> None:
    cur = conn.cursor()
    if name in ("PyMySQL", "mysqlclient", "mysql-connector"):
        # These rewrite executemany of an INSERT ... VALUES into multi-row statements.
        for chunk in chunks(n):
            cur.executemany(INSERT + "(%s, %s, %s, %s, %s)", chunk)
    else:
        # MariaDB Connector/Python sends executemany as a bulk (array binding) command.
        for chunk in chunks(n):
            cur.executemany(INSERT + "(?, ?, ?, ?, ?)", chunk)
    conn.commit()


def fetch(name: str, conn: Any) -> int:
    if name == "PyMySQL":
        import pymysql.cursors

        cur = conn.cursor(pymysql.cursors.SSCursor)
    elif name == "mysqlclient":
        import MySQLdb.cursors

        cur = conn.cursor(MySQLdb.cursors.SSCursor)
    elif name == "mariadb":
        cur = conn.cursor(buffered=False)
    else:
        cur = conn.cursor(buffered=False)
    cur.execute("SELECT id, name, price, qty, tag FROM bench ORDER BY id")
    count = 0
    while True:
        part = cur.fetchmany(10000)
        if not part:
            break
        count += len(part)
    cur.close()
    return count


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--url", default="mysql://root@127.0.0.1:3306/")
    args = ap.parse_args()
    u = urllib.parse.urlsplit(args.url)
    host, port, user, password = u.hostname or "127.0.0.1", u.port or 3306, u.username or "root", u.password or ""
    results: list[tuple[str, str, float, float]] = []
    for name, module in MODULES.items():
        try:
            mod = importlib.import_module(module)
        except ImportError as exc:
            print(f"{name:16} not installed ({exc})")
            continue
        del mod
        version = importlib.metadata.version(DISTS[name])
        db = "peersync_bench_drivers"
        admin = connect(name, host, port, user, password, "mysql")
        c = admin.cursor()
        c.execute(f"DROP DATABASE IF EXISTS {db}")
        c.execute(f"CREATE DATABASE {db}")
        admin.close()
        conn = connect(name, host, port, user, password, db)
        cur = conn.cursor()
        cur.execute(
            "CREATE TABLE bench (id BIGINT PRIMARY KEY, name VARCHAR(100), price DOUBLE, qty INT, tag VARBINARY(16))"
        )
        start = time.perf_counter()
        load(name, conn, args.rows)
        t_load = time.perf_counter() - start
        start = time.perf_counter()
        got = fetch(name, conn)
        t_fetch = time.perf_counter() - start
        assert got == args.rows, (name, got)
        cur = conn.cursor()
        cur.execute(f"DROP DATABASE {db}")
        conn.close()
        results.append((name, str(version), args.rows / t_load, args.rows / t_fetch))
        print(
            f"{name:16} {version:10} insert {args.rows / t_load:>10,.0f} rows/s"
            f"   fetch {args.rows / t_fetch:>10,.0f} rows/s"
        )
    if not results:
        return
    best_i = max(r[2] for r in results)
    best_f = max(r[3] for r in results)
    print(f"\n{args.rows:,} rows; ratio to the fastest driver (1.00 = fastest)")
    print(f"{'driver':16} {'version':10} {'insert':>8} {'fetch':>8}")
    for name, version, ins, fet in results:
        print(f"{name:16} {version:10} {best_i / ins:>8.2f} {best_f / fet:>8.2f}")


if __name__ == "__main__":
    main()
