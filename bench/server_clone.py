"""Clone of a PostgreSQL (or MariaDB) replica into a new SQLite file, against
a plain read of the same rows into SQLite, in the same process.

    python bench/server_clone.py                        # 1,000,000 rows from $PEERSYNC_PG_URL
    python bench/server_clone.py --rows 200000 --reps 5
    python bench/server_clone.py --server mysql         # from $PEERSYNC_MYSQL (root@127.0.0.1:3306)

The source is a provisioned table ``item (id bigint key, name text, qty
integer, price double)``. The baseline reads every row through a streaming
cursor (server-side for PostgreSQL, unbuffered for MariaDB) and inserts it
with ``executemany`` into an empty SQLite table of the same shape, in one
transaction: the least a copy into SQLite costs in Python. ``peersync.clone``
does that and more (tracking rows with versions, the change log, knowledge,
provisioning, a new replica id). Runs alternate (baseline, clone, baseline,
...) so the machine's load falls on both alike; the table shows each side's
median and the ratio of medians, with the load average. The first sync of
the clone with its source is timed too (it must send nothing), and the peak
memory of one more clone run in a process of its own.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import peersync

PG_ADMIN = os.environ.get("PEERSYNC_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
MYSQL = os.environ.get("PEERSYNC_MYSQL", "mysql://root@127.0.0.1:3306")
LITE = "CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT, qty INTEGER, price REAL)"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@contextmanager
def postgres(rows: int) -> Iterator[tuple[str, Callable[[str], None]]]:
    import psycopg

    name = f"peersync_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN.rpartition("/")[0] + "/" + name
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE item (id bigint PRIMARY KEY, name text, qty integer, price double precision)")
            conn.execute(
                "INSERT INTO item SELECT g, 'name ' || g, g %% 1000, g * 0.5 FROM generate_series(0, %s) AS g",
                (rows - 1,),
            )

        def read(path: str) -> None:
            conn = sqlite3.connect(path)
            conn.execute(LITE)
            with psycopg.connect(url) as pg, conn:
                cur = pg.cursor(name="read")
                cur.itersize = 5000
                cur.execute("SELECT id, name, qty, price FROM item")
                conn.executemany("INSERT INTO item VALUES (?, ?, ?, ?)", cur)
            conn.close()

        yield url, read
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def mysql(rows: int) -> Iterator[tuple[str, Callable[[str], None]]]:
    import pymysql
    import pymysql.cursors

    from peersync._adapters.mysql.conn import parse_url

    name = f"peersync_bench_{uuid.uuid4().hex[:10]}"
    base = MYSQL.rstrip("/")
    t = parse_url(base + "/" + name)

    def connect(**kw: Any) -> Any:
        return pymysql.connect(host=t.host, port=t.port, user=t.user, password=t.password, autocommit=True, **kw)

    with connect() as admin:
        admin.cursor().execute(f"CREATE DATABASE `{name}`")
    url = base + "/" + name
    try:
        with connect(database=name) as conn:
            cur = conn.cursor()
            cur.execute("CREATE TABLE item (id bigint PRIMARY KEY, name text, qty int, price double)")
            for lo in range(0, rows, 50_000):
                hi = min(rows, lo + 50_000)
                cur.executemany(
                    "INSERT INTO item VALUES (%s, %s, %s, %s)",
                    [(i, f"name {i}", i % 1000, i * 0.5) for i in range(lo, hi)],
                )

        def read(path: str) -> None:
            conn = sqlite3.connect(path)
            conn.execute(LITE)
            with connect(database=name) as my, conn:
                cur = my.cursor(pymysql.cursors.SSCursor)
                cur.execute("SELECT id, name, qty, price FROM item")
                conn.executemany("INSERT INTO item VALUES (?, ?, ?, ?)", cur)
            conn.close()

        yield url, read
    finally:
        with connect() as admin:
            admin.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")


def peak_rss(url: str, dst: str) -> int:
    """KiB: the peak resident memory of a new process that runs the clone."""
    code = (
        "import resource, sys, peersync; peersync.clone(sys.argv[1], sys.argv[2], 's');"
        " print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1] / "src"))
    out = subprocess.run([sys.executable, "-c", code, url, dst], capture_output=True, text=True, env=env, check=True)
    return int(out.stdout.split()[-1])


def timed(fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--server", choices=("postgres", "mysql"), default="postgres")
    args = ap.parse_args()
    source = postgres if args.server == "postgres" else mysql
    log(f"making a {args.server} source of {args.rows:,} rows")
    with source(args.rows) as (url, read), tempfile.TemporaryDirectory() as folder:
        with peersync.connect(url) as db:
            db.provision("s", ["item"])
        reads, clones = [], []
        for i in range(args.reps):
            plain, dst = os.path.join(folder, f"plain{i}.db"), os.path.join(folder, f"clone{i}.db")
            log(f"run {i + 1}/{args.reps}: plain read")
            reads.append(timed(lambda: read(plain)))  # noqa: B023 (called at once)
            log(f"run {i + 1}/{args.reps}: clone")
            clones.append(timed(lambda: peersync.clone(url, dst, "s")))  # noqa: B023
            if i < args.reps - 1:
                for p in (plain, dst):
                    os.unlink(p)
        with peersync.connect(url) as a, peersync.connect(dst) as c:
            results: list[peersync.SyncResult] = []
            first = timed(lambda: results.append(peersync.sync(a, c, "s")))
        r = results[0]
        if (r.sent_a_to_b, r.sent_b_to_a) != (0, 0):
            raise RuntimeError(f"the first sync of the clone with its source sent {r.to_dict()}")
        log("peak memory of a clone in a new process")
        rss = peak_rss(url, os.path.join(folder, "rss.db"))
    load = os.getloadavg()
    base, ours = statistics.median(reads), statistics.median(clones)
    print(f"{'figure':58} {'baseline':>10} {'peersync':>10} {'ratio':>7}")
    print(f"{f'clone of {args.rows:,} rows from {args.server} (vs read+insert)':58} {base:>9.3f}s {ours:>9.3f}s"
          f" {ours / base:>6.2f}x")  # fmt: skip
    print(f"runs: read {', '.join(f'{x:.2f}' for x in reads)} s; clone {', '.join(f'{x:.2f}' for x in clones)} s")
    print(f"first sync of the clone with its source: 0 rows both ways in {first * 1000:.0f} ms")
    print(f"peak RSS of a process that imports peersync and clones {args.rows:,} rows: {rss / 1024:.1f} MiB")
    print(f"load average: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
