"""PostgreSQL write cost of tracking, each figure against the untracked table in the same run.

    python bench/pg_writers.py                       # server: $PEERSYNC_PG_URL or postgresql://postgres@127.0.0.1/test
    python bench/pg_writers.py --rows 200000 --seconds 5

Figures (one table on stdout, progress on stderr):

- bulk load: ``COPY`` of ``--rows`` rows into an empty table;
- single-row inserts: one autocommit ``INSERT`` per row, 5,000 rows;
- 8 concurrent writers: each thread runs autocommit single-row upserts on
  random keys of a 100,000-row table for ``--seconds``; throughput in
  statements per second, untracked, tracked, and tracked while a loop of
  PostgreSQL -> SQLite sync sessions runs. This is the figure that shows
  whether tracking serializes writers (it takes no global row: each
  transaction takes a tick from a sequence and one shared advisory lock).

- initial sync: ``--rows`` rows SQLite -> PostgreSQL against psycopg's ``COPY``
  of the same rows read from the same SQLite file, and PostgreSQL -> SQLite
  against a plain read (server-side cursor) and ``executemany`` insert.

Each run uses a new database, dropped afterwards.
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import peersync

ADMIN = os.environ.get("PEERSYNC_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
SCHEMA = "CREATE TABLE item (id bigint PRIMARY KEY, name text, qty integer, price double precision)"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@contextmanager
def database(tracked: bool) -> Iterator[str]:
    name = f"peersync_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = ADMIN.rpartition("/")[0] + "/" + name
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(SCHEMA)
        if tracked:
            with peersync.connect(url) as db:
                db.provision("s", ["item"])
        yield url
    finally:
        with psycopg.connect(ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def bulk(url: str, rows: int) -> float:
    t = time.perf_counter()
    with psycopg.connect(url) as conn, conn.cursor().copy("COPY item FROM STDIN") as cp:
        for i in range(rows):
            cp.write_row((i, f"name {i}", i % 1000, i * 0.5))
    return time.perf_counter() - t


def single(url: str, rows: int) -> float:
    with psycopg.connect(url, autocommit=True) as conn:
        t = time.perf_counter()
        for i in range(rows):
            conn.execute("INSERT INTO item VALUES (%s, %s, %s, %s)", (i, "x", i, 0.5))
        return time.perf_counter() - t


def writers(
    url: str, seconds: float, threads: int, keys: int, background: Callable[[threading.Event], None] | None
) -> float:
    with psycopg.connect(url) as conn, conn.cursor().copy("COPY item FROM STDIN") as cp:
        for i in range(keys):
            cp.write_row((i, "seed", 0, 0.0))
    stop = threading.Event()
    counts = [0] * threads

    def work(n: int) -> None:
        rnd = random.Random(n)
        with psycopg.connect(url, autocommit=True) as c:
            while not stop.is_set():
                try:
                    c.execute(
                        "INSERT INTO item VALUES (%s, 'w', %s, 1.0) ON CONFLICT (id) DO UPDATE SET qty = excluded.qty",
                        (rnd.randrange(keys), n),
                    )
                except psycopg.errors.DeadlockDetected:
                    continue
                counts[n] += 1

    pool = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    side = threading.Thread(target=background, args=(stop,)) if background else None
    for th in pool:
        th.start()
    if side:
        side.start()
    time.sleep(seconds)
    stop.set()
    for th in pool:
        th.join()
    if side:
        side.join()
    return sum(counts) / seconds


def sessions(url: str, folder: str) -> Callable[[threading.Event], None]:
    path = os.path.join(folder, "dest.db")
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT, qty INTEGER, price REAL)")
    conn.close()
    with peersync.connect(path) as d:
        d.provision("s", ["item"])

    def loop(stop: threading.Event) -> None:
        n = 0
        with peersync.connect(url) as src, peersync.connect(path) as dst:
            while not stop.is_set():
                peersync.sync(src, dst, "s", direction="push")
                n += 1
        log(f"  {n} sessions ran during the writers' run")

    return loop


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--threads", type=int, default=8)
    args = ap.parse_args()
    out: list[tuple[str, float, float, str]] = []
    for name, fn, unit in (
        (f"bulk COPY of {args.rows:,} rows", lambda u: bulk(u, args.rows), "s"),
        ("5,000 single-row autocommit inserts", lambda u: single(u, 5000), "s"),
    ):
        log(name)
        base = min(fn_run(fn, False) for _ in range(2))
        tracked = min(fn_run(fn, True) for _ in range(2))
        out.append((name, base, tracked, unit))
    log("initial sync")
    with tempfile.TemporaryDirectory() as folder:
        out += initial(args.rows, folder)
    label = f"{args.threads} concurrent writers, upserts/s"
    log(label)
    with database(False) as u:
        base = writers(u, args.seconds, args.threads, 100_000, None)
    with database(True) as u:
        tracked = writers(u, args.seconds, args.threads, 100_000, None)
    with database(True) as u, tempfile.TemporaryDirectory() as folder:
        during = writers(u, args.seconds, args.threads, 100_000, sessions(u, folder))
    print(f"{'figure':62} {'baseline':>12} {'peersync':>12} {'ratio':>7}")
    for name, b, t, unit in out:
        print(f"{name:62} {b:>11.3f}{unit} {t:>11.3f}{unit} {t / b:>6.2f}x")
    print(f"{label + ' (untracked vs tracked)':62} {base:>12.0f} {tracked:>12.0f} {base / tracked:>6.2f}x slower")
    print(f"{label + ', sessions running':62} {base:>12.0f} {during:>12.0f} {base / during:>6.2f}x slower")


def initial(rows: int, folder: str) -> list[tuple[str, float, float, str]]:
    """(figure, baseline s, peersync s, unit) for an initial sync each way."""
    src = os.path.join(folder, "src.db")
    conn = sqlite3.connect(src)
    conn.execute("CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT, qty INTEGER, price REAL)")
    with conn:
        conn.executemany(
            "INSERT INTO item VALUES (?, ?, ?, ?)", ((i, f"name {i}", i % 1000, i * 0.5) for i in range(rows))
        )
    conn.close()
    with peersync.connect(src) as db:
        db.provision("s", ["item"])
    with database(False) as u:
        t = time.perf_counter()
        with psycopg.connect(u) as pg, pg.cursor().copy("COPY item FROM STDIN") as cp:
            for r in sqlite3.connect(src).execute("SELECT * FROM item"):
                cp.write_row(r)
        copy = time.perf_counter() - t
    with database(True) as u:
        t = time.perf_counter()
        with peersync.connect(src) as a, peersync.connect(u) as b:
            peersync.sync(a, b, "s", direction="push")
        into = time.perf_counter() - t
        dst, plain = os.path.join(folder, "dst.db"), os.path.join(folder, "plain.db")
        for path in (dst, plain):
            conn = sqlite3.connect(path)
            conn.execute("CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT, qty INTEGER, price REAL)")
            conn.close()
        with peersync.connect(dst) as db:
            db.provision("s", ["item"])
        t = time.perf_counter()
        with peersync.connect(u) as a, peersync.connect(dst) as b:
            peersync.sync(a, b, "s", direction="push")
        out = time.perf_counter() - t
        t = time.perf_counter()
        conn = sqlite3.connect(plain)
        with psycopg.connect(u) as pg, conn:
            cur = pg.cursor(name="read")
            cur.execute("SELECT * FROM item")
            conn.executemany("INSERT INTO item VALUES (?, ?, ?, ?)", cur)
        conn.close()
        read = time.perf_counter() - t
    return [
        (f"initial sync SQLite -> PostgreSQL, {rows:,} rows (vs COPY)", copy, into, "s"),
        (f"initial sync PostgreSQL -> SQLite, {rows:,} rows (vs read+insert)", read, out, "s"),
    ]


def fn_run(fn: Callable[[str], Any], tracked: bool) -> float:
    with database(tracked) as u:
        return float(fn(u))


if __name__ == "__main__":
    main()
