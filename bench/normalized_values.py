"""Cost of the rewritten-value check on a 100k-row apply, SQLite -> PostgreSQL or MariaDB.

``python bench/normalized_values.py pg|my`` (``N=...`` rows, default 100000): a push of N rows
into a table without a rewritable column and into one with a timestamp and a UUID column (values
in stored form, so nothing is rewritten), each with the check off and on, twice; then one push
whose every row is rewritten (and comes back). Uses the loopback servers of the test suite.
"""

import os
import sqlite3
import sys
import time
import uuid

import psycopg
import pymysql

import peersync
from peersync._adapters.mysql.apply import Apply
from peersync._adapters.postgres import apply as pg_apply

N = int(os.environ.get("N", "100000"))
MYSQL_PORT = int(os.environ.get("MYSQL_PORT", "3306"))
KIND = sys.argv[1]


def mk_sqlite(path, ddl, rows):
    if os.path.exists(path):
        os.remove(path)
    c = sqlite3.connect(path)
    c.execute(ddl)
    c.executemany(f"INSERT INTO v VALUES ({','.join('?' * len(rows[0]))})", rows)
    c.commit()
    c.close()


def server(ddl):
    name = "nzb_" + uuid.uuid4().hex[:8]
    if KIND == "pg":
        a = psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", autocommit=True)
        a.execute(f'CREATE DATABASE "{name}"')
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{name}", autocommit=True) as c:
            c.execute(ddl)
        return f"postgresql://postgres@127.0.0.1:5432/{name}", lambda: a.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    a = pymysql.connect(host="127.0.0.1", port=MYSQL_PORT, user="root", autocommit=True)
    a.cursor().execute(f"CREATE DATABASE {name}")
    a.cursor().execute(f"USE {name}")
    a.cursor().execute(ddl)
    return f"mysql://root@127.0.0.1:{MYSQL_PORT}/{name}", lambda: a.cursor().execute(f"DROP DATABASE {name}")


SQL_PLAIN = "CREATE TABLE v (id TEXT PRIMARY KEY, n INTEGER, s TEXT)"
SQL_TS = "CREATE TABLE v (id TEXT PRIMARY KEY, n INTEGER, ts DATETIME, u UUID)"
SRV = {
    "pg": (
        "CREATE TABLE v (id text PRIMARY KEY, n int, s text)",
        "CREATE TABLE v (id text PRIMARY KEY, n int, ts timestamp, u uuid)",
    ),
    "my": (
        "CREATE TABLE v (id varchar(20) PRIMARY KEY, n int, s text)",
        "CREATE TABLE v (id varchar(20) PRIMARY KEY, n int, ts datetime(6), u uuid)",
    ),
}[KIND]
plain = [(f"k{i:07d}", i, "x" * 20) for i in range(N)]
canon = [(f"k{i:07d}", i, "2024-01-02 03:04:05.500000", str(uuid.UUID(int=i))) for i in range(N)]
rewr = [(f"k{i:07d}", i, "2024-01-02 03:04:05.5", str(uuid.UUID(int=i)).upper()) for i in range(N)]
orig = pg_apply.restamp_rewritten if KIND == "pg" else Apply._normalized


def run(label, sddl, ddl, rows, check):
    if KIND == "pg":
        pg_apply.restamp_rewritten = orig if check else (lambda *a: None)
    else:
        Apply._normalized = orig if check else (lambda self, t, rows: None)
    p = "/tmp/nz/bench_a.db"
    mk_sqlite(p, sddl, rows)
    url, drop = server(ddl)
    try:
        with peersync.connect(p) as a, peersync.connect(url) as s:
            a.provision("s", ["v"])
            s.provision("s", ["v"])
            t0 = time.perf_counter()
            r = peersync.sync(a, s, "s", direction="push")
            dt = time.perf_counter() - t0
            back = peersync.sync(a, s, "s", direction="pull").sent_b_to_a
        print(
            f"{KIND} {label:32s} check={check!s:5s} {dt:7.2f}s sent={r.sent_a_to_b} restamped_back={back}", flush=True
        )
    finally:
        drop()


for _ in range(2):
    run("plain (no rewritable column)", SQL_PLAIN, SRV[0], plain, False)
    run("plain (no rewritable column)", SQL_PLAIN, SRV[0], plain, True)
    run("ts+uuid canonical", SQL_TS, SRV[1], canon, False)
    run("ts+uuid canonical", SQL_TS, SRV[1], canon, True)
run("ts+uuid all rewritten", SQL_TS, SRV[1], rewr, True)
