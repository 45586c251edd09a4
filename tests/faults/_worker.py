"""A foreign writer for the kill tests, run as a subprocess and killed with SIGKILL.

Usage: ``python _worker.py DB MODE SEED``

- ``hang``: one big transaction through plain SQL (the peersync triggers fire),
  with a tiny page cache so that pages spill to the database file (rollback
  journal) or the WAL before commit; prints ``ready`` and waits to be killed
  inside the transaction.
- ``loop``: short write transactions one after another until killed, so that a
  kill lands inside one of them or between two; prints ``ready`` after the
  first commit.

Both use the tables of ``test_kill.SCHEMA`` (parent, child, doc).
"""

from __future__ import annotations

import random
import sqlite3
import sys
import time


def _write_some(conn: sqlite3.Connection, rng: random.Random, n: int, tag: str) -> None:
    ids = [r[0] for r in conn.execute("SELECT id FROM parent ORDER BY random() LIMIT ?", (n,))]
    for i, pid in enumerate(ids):
        op = rng.random()
        if op < 0.6:
            conn.execute("UPDATE parent SET qty = qty + 1, name = ? WHERE id = ?", (f"{tag}-{i}", pid))
        elif op < 0.8:
            conn.execute(
                "INSERT OR REPLACE INTO child (parent_id, label, note) VALUES (?, ?, ?)", (pid, f"w{tag}", tag)
            )
        elif op < 0.9:
            conn.execute("DELETE FROM child WHERE parent_id = ?", (pid,))
        else:
            conn.execute(
                "INSERT OR REPLACE INTO doc (slug, body, rev) VALUES (?, ?, ?)", (f"w-{tag}-{i}", "x" * 200, i)
            )


def main() -> None:
    path, mode, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
    rng = random.Random(seed)
    conn = sqlite3.connect(path, timeout=10.0, isolation_level=None)
    conn.execute("PRAGMA foreign_keys = ON")
    if mode == "hang":
        conn.execute("PRAGMA cache_size = 5")  # spill dirty pages before commit
        conn.execute("BEGIN IMMEDIATE")
        _write_some(conn, rng, 400, f"hang{seed}")
        conn.executemany(
            "INSERT INTO doc (slug, body, rev) VALUES (?, ?, ?)",
            [(f"hang-{seed}-{i}", "y" * 500, i) for i in range(2000)],
        )
        print("ready", flush=True)
        time.sleep(3600)
    elif mode == "loop":
        n = 0
        while True:
            conn.execute("BEGIN IMMEDIATE")
            _write_some(conn, rng, 20, f"loop{seed}.{n}")
            conn.execute("COMMIT")
            if n == 0:
                print("ready", flush=True)
            n += 1
            time.sleep(0.003)  # pacing, so the sync gets the write lock in rollback-journal mode
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
