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
    label = f"{args.threads} concurrent writers, upserts/s"
    log(label)
    with database(False) as u:
        base = writers(u, args.seconds, args.threads, 100_000, None)
    with database(True) as u:
        tracked = writers(u, args.seconds, args.threads, 100_000, None)
    with database(True) as u, tempfile.TemporaryDirectory() as folder:
        during = writers(u, args.seconds, args.threads, 100_000, sessions(u, folder))
    print(f"{'figure':45} {'untracked':>12} {'tracked':>12} {'ratio':>7}")
    for name, b, t, unit in out:
        print(f"{name:45} {b:>11.3f}{unit} {t:>11.3f}{unit} {t / b:>6.2f}x")
    print(f"{label:45} {base:>12.0f} {tracked:>12.0f} {base / tracked:>6.2f}x (slowdown)")
    print(f"{label + ', sessions running':45} {base:>12.0f} {during:>12.0f} {base / during:>6.2f}x (slowdown)")


def fn_run(fn: Callable[[str], Any], tracked: bool) -> float:
    with database(tracked) as u:
        return float(fn(u))


if __name__ == "__main__":
    main()
