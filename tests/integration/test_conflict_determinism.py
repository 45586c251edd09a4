"""Conflict resolution is deterministic: under last writer wins every replica reaches the
same winner, whatever the order in which sessions bring it the competing versions (docs/design.md, "Conflicts")."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import peersync

from ..helpers import connect_all, rows, write

MakeDb = Callable[..., Path]


def test_last_writer_wins_tie_goes_to_the_same_edit_whatever_the_order_of_sessions(make_db: MakeDb) -> None:
    """Last writer wins compares change times, then replica ids: the same winner whatever the
    order. Three concurrent edits at the same millisecond at P < Q < R (replica ids): R's
    edit wins everywhere, even when it reaches P first and P passes it on to Q. A winner
    chosen by last writer keeps its own version (every replica decides alike); rewritten as
    a new version of the resolving replica P, it would lose the tie to Q's edit at Q, and
    the outcome would depend on who synced with whom first."""
    paths = [make_db(n) for n in "abc"]
    dbs = connect_all(*paths)
    try:
        for db in dbs:
            db.provision("s", ["item"])
        write(paths[0], "INSERT INTO item VALUES (1, 'base', 1, 1.0)")
        for db in dbs[1:]:
            peersync.sync(dbs[0], db, "s")
        order = sorted(range(3), key=lambda i: dbs[i].describe("s").replica_id)
        p, q, r = order
        at_ms = (int(time.time()) + 10) * 1000 + 0.5  # one instant for all three writers (a shared fake clock)

        def julianday(arg: str, *_: object) -> float | None:
            return at_ms / 86_400_000.0 + 2440587.5 if arg == "now" else None

        for i in range(3):
            w = sqlite3.connect(paths[i])
            w.create_function("julianday", -1, julianday)
            with w:
                w.execute("UPDATE item SET name = ? WHERE id = 1", (f"by {'PQR'[order.index(i)]}",))
            w.close()
        peersync.sync(dbs[r], dbs[p], "s", direction="push")  # P: R's edit wins the tie, rewritten as P's version
        peersync.sync(dbs[p], dbs[q], "s", direction="push")  # Q: P's rewrite loses the tie to Q's edit
        for _ in range(2):
            for i in range(3):
                for j in range(i + 1, 3):
                    peersync.sync(dbs[i], dbs[j], "s")
        assert [rows(path, "item")[0][1] for path in paths] == ["by R"] * 3
    finally:
        for db in dbs:
            db.close()
