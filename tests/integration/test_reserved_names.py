"""peersync's own objects, temporary tables and savepoints included, are named
with the reserved prefix ``_peersync_``; any other name is the user's. A user
table may be called anything else, and a table with the prefix is refused."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

import peersync
from peersync._cli.main import cli

from ..helpers import rows, write

MakeDb = Callable[..., Path]

# Names peersync's temporary tables had before they took the prefix.
LOOKALIKES = ["ps_in_0_3", "ps_in_1_3", "ps_rmap", "ps_known", "ps_kd", "ps_mw", "ps_exid", "ps_lmw"]


def test_user_tables_named_like_internal_tables_sync(make_db: MakeDb) -> None:
    """Tables named as peersync's temporary tables once were (``ps_rmap``,
    ``ps_in_0_3``, ...), each synced with rows, conflicts and deletes, in the
    same scope as an ordinary table of the same width."""
    schema = "CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT, qty INTEGER);" + "".join(
        f"CREATE TABLE {t} (b INTEGER PRIMARY KEY, l TEXT, own INTEGER);" for t in LOOKALIKES
    )
    tables = ["item", *LOOKALIKES]
    pa, pb = make_db("a", schema), make_db("b", schema)
    with peersync.connect(pa) as a, peersync.connect(pb) as b:
        a.provision("s", tables)
        b.provision("s", tables)
        for i, path in enumerate((pa, pb)):
            write(
                path,
                *(f"INSERT INTO {t} VALUES ({i}, '{t}', {i})" for t in tables),
                *(f"INSERT INTO {t} VALUES (9, 'from {i}', {i})" for t in tables),  # insert/insert conflicts
            )
        r = peersync.sync(a, b, "s")
        assert (r.errors, r.sent_a_to_b) == (0, 2 * len(tables))
        write(pa, *(f"DELETE FROM {t} WHERE b = 0" for t in LOOKALIKES), "DELETE FROM item WHERE id = 0")
        write(pb, *(f"UPDATE {t} SET own = own + 1 WHERE b = 1" for t in LOOKALIKES))
        r = peersync.sync(a, b, "s")
        assert r.errors == 0
        for t in tables:
            assert rows(pa, t) == rows(pb, t), t
            assert [r[0] for r in rows(pa, t)] == [1, 9]
        for t in LOOKALIKES:
            assert rows(pa, t)[0] == (1, t, 2)
        r = peersync.sync(a, b, "s")
        assert (r.sent_a_to_b, r.sent_b_to_a) == (0, 0)


def test_every_temporary_table_and_index_carries_the_reserved_prefix(make_db: MakeDb) -> None:
    """After sessions that take every apply path (conflicts, a failed row, a
    foreign key, a UNIQUE collision), the connections' temporary schema holds
    only names with the prefix, so none can hide a user's table."""
    schema = (
        "CREATE TABLE parent (id INTEGER PRIMARY KEY, name TEXT UNIQUE);"
        "CREATE TABLE child (id INTEGER PRIMARY KEY, pid INTEGER REFERENCES parent(id),"
        " up INTEGER REFERENCES child(id));"
    )
    pa, pb = make_db("a", schema), make_db("b", schema)
    with peersync.connect(pa) as a, peersync.connect(pb) as b:
        a.provision("s", ["parent", "child"])
        b.provision("s", ["parent", "child"])
        write(pa, "INSERT INTO parent VALUES (1, 'p1'), (2, 'p2')", "INSERT INTO child VALUES (10, 1, NULL)")
        write(pa, "INSERT INTO child VALUES (11, 2, 10)", "UPDATE child SET up = 11 WHERE id = 10")
        write(pb, "INSERT INTO parent VALUES (3, 'p2'), (1, 'mine')")
        peersync.sync(a, b, "s", batch_size=2)
        peersync.sync(a, b, "s")
        for db in (a, b):
            names = [
                n for (n,) in db.conn.execute("SELECT name FROM sqlite_temp_master") if not n.startswith("sqlite_")
            ]
            assert names and all(n.startswith("_peersync_") for n in names), names


@pytest.mark.parametrize("name", ["_peersync_x", "_PeerSync_notes"])
def test_provisioning_a_table_with_the_reserved_prefix_is_refused(make_db: MakeDb, name: str) -> None:
    path = make_db("a", f'CREATE TABLE "{name}" (id INTEGER PRIMARY KEY); CREATE TABLE item (id INTEGER PRIMARY KEY);')
    with peersync.connect(path) as db, pytest.raises(peersync.TableError, match="reserved"):
        db.provision("s", ["item", name])
    res = CliRunner().invoke(cli, ["init", str(path), "--scope", "s", "--table", "item", "--table", name])
    assert res.exit_code == 2
    assert res.stdout == ""
    assert res.stderr.count("\n") == 1 and res.stderr.startswith("peersync: error: ")
    assert name in res.stderr and "reserved" in res.stderr
    conn = sqlite3.connect(path)  # nothing was created
    assert conn.execute("SELECT count(*) FROM sqlite_master").fetchone() == (2,)
    conn.close()
