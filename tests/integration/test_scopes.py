"""Scopes: a database holds several, a table may belong to several, and one connection
syncs any of them, whatever their tables' shapes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

import peersync

from ..helpers import connect_all, rows, write

MakeDb = Callable[..., Path]

ONE_TABLE = "CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT, qty INTEGER);"


@pytest.mark.parametrize("how", ["two-scopes", "reprovision"])
def test_one_connection_applies_a_wider_table_at_the_position_of_a_narrower_one(make_db: MakeDb, how: str) -> None:
    """One connection applies batches of two scopes, or of one scope provisioned again over
    another table. The temporary table that holds a batch's rows is named by the table's
    position in its scope and by its width, so a wider table at the position of an earlier
    narrow one gets a table of its own (sharing one failed with StorageError 'table
    temp..._in_0 has no column named c2')."""
    schema = (
        "CREATE TABLE narrow (id INTEGER PRIMARY KEY, v TEXT); CREATE TABLE wide (id INTEGER PRIMARY KEY, a, b, c);"
    )
    pa, pb = make_db("a", schema), make_db("b", schema)
    a, b = connect_all(pa, pb)
    try:
        for d in (a, b):
            d.provision("n", ["narrow"])
        write(pa, "INSERT INTO narrow VALUES (1, 'x')", "INSERT INTO wide VALUES (1, 1, 2, 3)")
        peersync.sync(a, b, "n")
        if how == "two-scopes":
            scope = "w"
        else:
            scope = "n"
            for d in (a, b):
                d.deprovision("n")
        for d in (a, b):
            d.provision(scope, ["wide"])
        peersync.sync(a, b, scope)  # raises StorageError today
        assert rows(pb, "wide") == [(1, 1, 2, 3)]
    finally:
        a.close()
        b.close()


@pytest.mark.xfail(
    strict=True,
    reason="limit (README): a table in two scopes synced between the same two peers re-sends its rows between the"
    " scopes (each scope reports rows applied through the other as its own changes)",
)
def test_two_scopes_sharing_a_table_go_quiet(make_db: Callable[..., Path]) -> None:
    """A table in two scopes, both synced between the same two peers.

    One insert on A, then both scopes synced a few times with no new writes: a session with
    no new writes must send 0 (no redundancy), and a single insert must log no conflict.
    Known limit (README): a row that arrived through scope s is reported by scope t as a
    new local change of the receiving replica, so t sends it back as an insert/insert
    conflict, whose outcome is again a local change for s, and so on for ever."""
    pa, pb = make_db("a", ONE_TABLE), make_db("b", ONE_TABLE)
    a, b = peersync.connect(pa), peersync.connect(pb)
    try:
        for db in (a, b):
            db.provision("s", ["item"])
            db.provision("t", ["item"])
        write(pa, "INSERT INTO item VALUES (1, 'x', 1)")
        for _ in range(2):
            peersync.sync(a, b, "s")
            peersync.sync(a, b, "t")
        assert rows(pa, "item") == rows(pb, "item") == [(1, "x", 1)]
        again = [peersync.sync(a, b, sc) for sc in ("s", "t")]
        assert [(r.sent_a_to_b, r.sent_b_to_a) for r in again] == [(0, 0), (0, 0)], "sessions never go quiet"
        assert a.conflicts() == [] and b.conflicts() == [], "a single insert logged conflicts"
    finally:
        a.close()
        b.close()
