"""``peersync.clone`` from a PostgreSQL or MariaDB replica into a new SQLite
database (docs/design.md, "Snapshot initialization (clone)"): the clone
holds the source's rows as of its snapshot bound with their versions, and
knows exactly what the source's description hands out, so its first sync
with the source sends nothing either way, with a third peer it receives
only what the source lacked, and a writer committing during the clone loses
nothing and is not claimed before it arrives. Run against both server kinds
of the conformance suite (real servers, pooled databases)."""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import peersync
from peersync import Knowledge, Policy
from peersync._adapters.sql.snapshot import Snapshot
from peersync._adapters.sqlite.clone import clone_from_server
from peersync._engine.wire import decode_batch
from peersync.testing import FaultyPeer

from ..integration.test_cli import assert_error, invoke, ok
from .conftest import Net, Node, sync
from .kinds import SCOPE, SQLiteKind

SERVERS = ["postgres", "mysql"]


@pytest.fixture(params=SERVERS)
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Net]:
    """Peers alternate: a server database of the kind under test, then SQLite."""
    n = Net((request.param, "sqlite"), tmp_path)
    yield n
    for node in n.nodes:
        node.peer.close()
    for kind in n.kinds.values():
        kind.cleanup()


def clone(net: Net, src: Node, label: str) -> Node:
    """``peersync.clone`` of ``src`` into a new SQLite file, as a node."""
    path = net.tmp / f"{label}.db"
    st = peersync.clone(src.url, path, SCOPE)
    assert st.replica_id != src.peer.describe(SCOPE).replica_id
    kind = net.kinds.get("sqlite") or net.kinds.setdefault("sqlite", SQLiteKind.fresh(net.tmp))
    node = Node(label, kind, peersync.connect(path), net)
    net.nodes.append(node)
    return node


def sqlite_node(net: Net, label: str) -> Node:
    """A new SQLite peer, provisioned, empty."""
    kind = net.kinds.get("sqlite") or net.kinds.setdefault("sqlite", SQLiteKind.fresh(net.tmp))
    node = Node(label, kind, kind.create(label), net)
    net.nodes.append(node)
    return node


def versions(node: Node) -> set[tuple[Any, ...]]:
    """Every row as the node would send it to a new replica: table, key,
    tombstone flag, version, creation version and change time."""
    info = node.peer.describe(SCOPE)
    schemas = {t.name: t for t in info.tables}
    data = node.peer.changes(SCOPE, Knowledge.empty(), 0, info.tick, max_rows=10**6, max_bytes=2**30)
    batch = decode_batch(data, schemas)
    assert batch.final
    out = set()
    for name, changes in batch.changes.items():
        key = schemas[name].key_positions
        for _, deleted, version, creation, ms, values in changes:
            out.add((name, tuple(values[i] for i in key), deleted, version, creation, ms))
    return out


def extras(node: Node) -> dict[tuple[str, tuple[Any, ...]], Knowledge]:
    """The made-with extras each row carries to a new replica (rows applied
    in a session that has not completed at ``node``), by table and key."""
    info = node.peer.describe(SCOPE)
    schemas = {t.name: t for t in info.tables}
    data = node.peer.changes(SCOPE, Knowledge.empty(), 0, info.tick, max_rows=10**6, max_bytes=2**30)
    batch = decode_batch(data, schemas)
    out = {}
    for name, changes in batch.changes.items():
        key = schemas[name].key_positions
        for change, mark in zip(changes, batch.extra_of.get(name, []), strict=False):
            if mark:
                out[(name, tuple(change[5][i] for i in key))] = batch.extras[mark - 1]
    return out


def sent(a: Node, b: Node) -> tuple[int, int]:
    r = sync(a, b)
    assert r.completed and r.error is None and r.errors == 0 and r.conflicts == 0, r
    return r.sent_a_to_b, r.sent_b_to_a


def history(net: Net) -> tuple[Node, Node]:
    """A server source with every kind of row: its own inserts, rows and an
    update that arrived from a SQLite peer, a delete of each origin, and
    foreign writes made after the last session."""
    s, p = net("S", "P")
    s.insert("item", {"id": 1, "name": "s1", "qty": 1})
    s.insert("item", {"id": 2, "name": "s2", "qty": 2})
    s.insert("note", {"owner": "ann", "slug": "a", "body": "from S"})
    p.insert("item", {"id": 10, "name": "p10", "qty": 10})
    p.insert("item", {"id": 11, "name": "p11", "qty": 11})
    p.insert("note", {"owner": "bob", "slug": "b", "body": "from P"})
    sent(s, p)
    p.update("item", (1,), {"qty": 100})
    p.delete("item", (11,))
    s.update("item", (2,), {"name": "s2!"})
    sent(s, p)
    s.insert("item", {"id": 3, "name": "s3", "qty": 3})
    s.delete("item", (10,))
    # A rolled back write: on PostgreSQL its tick is spent, so the source's
    # bound lies above its newest row's tick.
    w = Writer(s)
    w.insert(99)
    w.rollback()
    return s, p


def test_first_sync_with_its_source_sends_nothing_either_way(world: Net) -> None:
    s, _ = history(world)
    before = s.knowledge()
    c = clone(world, s, "C")
    cid = c.peer.describe(SCOPE).replica_id
    assert c.state() == s.state()
    # Each row with the version, creation and time the source reports for it.
    assert versions(c) == versions(s)
    # Exactly the source's knowledge at its bound, plus (trivially) its own id.
    assert c.knowledge().without(cid) == before
    st, src = c.peer.status(SCOPE)[0], s.peer.status(SCOPE)[0]
    assert (st.tracked_rows, st.tombstones) == (src.tracked_rows, src.tombstones) == (7, 2)
    assert sent(c, s) == (0, 0)
    assert sent(s, c) == (0, 0)
    assert c.state() == s.state()


def test_an_empty_scope_clones_to_an_empty_replica_that_knows_the_bound(world: Net) -> None:
    (s,) = world("S")
    w = Writer(s)
    w.insert(1)
    w.rollback()
    c = clone(world, s, "C")
    assert c.state() == s.state() == {"item": [], "note": []}
    assert c.knowledge().without(c.peer.describe(SCOPE).replica_id) == s.knowledge()
    assert sent(c, s) == (0, 0)


def test_with_a_third_peer_it_receives_only_what_its_source_lacked(world: Net) -> None:
    s, p = history(world)
    sent(s, p)
    q, r = world("Q", "R")  # Q is a server, R SQLite: neither has met S
    r.insert("item", {"id": 50, "name": "r50", "qty": 50})
    sent(r, p)  # P now holds r50, which S lacks
    c = clone(world, s, "C")
    # P holds everything S does, plus r50: that one row comes, nothing goes back.
    assert sent(p, c) == (1, 0)
    assert c.state() == p.state()
    # The clone's own writes reach every peer under its new id, once.
    c.insert("item", {"id": 60, "name": "c60", "qty": 60})
    assert sent(c, s) == (2, 0)
    assert sent(s, q)[0] == len(s.rows("item")) + len(s.rows("note")) + 2  # rows and 2 tombstones
    assert sent(c, q) == (0, 0)
    assert sent(q, p) == (1, 0)  # c60, and nothing P had
    for node in (s, p, q):
        assert node.state() == c.state()


def test_a_row_from_a_session_unfinished_at_the_source_keeps_its_made_with_record(world: Net) -> None:
    """The source holds X's change, made knowing P's v2, from a session whose
    reply was lost: its knowledge lacks v2, but a record says its row
    supersedes v2 (docs/design.md, "Made-with knowledge"). The clone keeps
    that record: when P sends v2, it is obsolete there too, and under
    source-wins it does not overwrite X's later edit."""
    s, p = world("S", "P")
    x = sqlite_node(world, "X")
    p.insert("item", {"id": 1, "name": "v1", "qty": 1})
    sent(p, x)
    sent(p, s)
    p.update("item", (1,), {"name": "v2"})
    assert peersync.sync(p.peer, x.peer, SCOPE, direction="push").sent_a_to_b == 1
    x.update("item", (1,), {"qty": 3})  # made knowing v2
    with pytest.raises(peersync.TransportError):
        peersync.run_session(x.peer, FaultyPeer(s.peer, lose_reply_after=0), SCOPE)
    assert s.rows() == x.rows()
    c = clone(world, s, "C")
    assert extras(s) and extras(c) == extras(s)
    res = peersync.run_session(p.peer, c.peer, SCOPE, policy=Policy.SOURCE_WINS)
    assert (res.conflicts, c.peer.conflicts(SCOPE)) == (0, [])
    assert c.rows() == x.rows()


def test_a_clone_of_a_clone_is_a_third_replica_that_syncs_nothing(world: Net) -> None:
    s, p = history(world)
    c = clone(world, s, "C")
    d = clone(world, c, "D")
    ids = {n.peer.describe(SCOPE).replica_id for n in (s, c, d)}
    assert len(ids) == 3
    assert sent(d, s) == (0, 0)
    assert sent(d, c) == (0, 0)
    assert sent(p, d) == (0, 2)  # S's two changes since P last synced with it (s3, the delete of 10)
    assert sent(p, s) == (0, 0)
    assert d.state() == s.state() == p.state()


class Writer:
    """A foreign writer on its own connection, holding a transaction open."""

    def __init__(self, node: Node) -> None:
        self.node = node
        if node.kind.name == "postgres":
            import psycopg

            self.conn: Any = psycopg.connect(node.url)
        else:
            import pymysql

            from peersync._adapters.mysql.conn import parse_url

            t = parse_url(node.url)
            self.conn = pymysql.connect(host=t.host, port=t.port, user=t.user, password=t.password,
                                        database=t.database, autocommit=False)  # fmt: skip

    def insert(self, id_: int) -> None:
        self.conn.cursor().execute("INSERT INTO item (id, name, qty) VALUES (%s, %s, %s)", (id_, f"w{id_}", id_))

    def commit(self) -> None:
        self.conn.commit()
        self.conn.close()

    def rollback(self) -> None:
        self.conn.rollback()
        self.conn.close()


def test_a_writer_committing_during_the_clone_is_neither_lost_nor_claimed(world: Net) -> None:
    s, p = history(world)
    sent(s, p)
    held = Writer(s)
    held.insert(200)  # takes its tick, does not commit yet
    s.insert("item", {"id": 201, "name": "later", "qty": 201})  # a later tick, committed
    s.update("item", (1,), {"qty": 1000})  # a committed change of an existing row, after the held one
    p.insert("item", {"id": 300, "name": "p300", "qty": 300})
    assert peersync.sync(p.peer, s.peer, SCOPE, direction="push").sent_a_to_b == 1  # S learns (P, p300)
    c = clone(world, s, "C")
    assert 200 not in {r[0] for r in c.rows("item")}
    # The clone holds and knows what one complete session up to the same
    # bound gives a new replica: rows above the bound are not in it, nor
    # claimed, so they come next session.
    e = sqlite_node(world, "E")
    pull = peersync.sync(e.peer, s.peer, SCOPE, direction="pull")
    assert pull.completed and pull.error is None
    assert e.state() == c.state()
    assert versions(e) == versions(c)
    cid, eid = (n.peer.describe(SCOPE).replica_id for n in (c, e))
    assert c.knowledge().without(cid) == e.knowledge().without(eid)
    held.commit()
    got, back = sent(s, c)
    # PostgreSQL's bound stops below the held transaction's tick: the later
    # commits are above it too. MariaDB seals committed ticks in commit
    # order: only the held row comes after the clone's bound.
    assert (got, back) == ((4, 0) if s.kind.name == "postgres" else (1, 0))
    assert c.state() == s.state()
    assert sent(s, c) == (0, 0)
    assert sent(p, c) == (0, 3)  # P lacks the three changes, and has nothing the clone lacks
    assert p.state() == s.state()


def test_a_clone_taken_while_a_writer_runs_converges_without_conflicts(world: Net) -> None:
    s, _ = history(world)
    stop = threading.Event()
    written: list[int] = []

    def write() -> None:
        i = 1000
        while not stop.is_set() and i < 1400:
            w = Writer(s)
            w.insert(i)
            w.conn.cursor().execute("UPDATE item SET qty = qty + 1 WHERE id = 2")
            w.commit()
            written.append(i)
            i += 1

    t = threading.Thread(target=write)
    t.start()
    try:
        while len(written) < 5:
            stop.wait(0.01)
        c = clone(world, s, "C")
    finally:
        stop.set()
        t.join()
    assert sent(s, c)[1] == 0
    assert c.state() == s.state()
    assert sent(c, s) == (0, 0)
    assert {r[0] for r in c.rows("item")} >= set(written)


# -- bad input ---------------------------------------------------------------------------------------------
def _leftovers(folder: Path) -> list[str]:
    return sorted(n for n in os.listdir(folder) if "peersync-clone" in n or n.startswith(".dst"))


def test_an_unknown_scope_is_one_clear_error_and_leaves_nothing(world: Net) -> None:
    (s,) = world("S")
    dst = world.tmp / "dst.db"
    with pytest.raises(peersync.ScopeError, match="nope"):
        peersync.clone(s.url, dst, "nope")
    assert not dst.exists() and _leftovers(world.tmp) == []


def test_an_existing_destination_is_refused_and_left_as_it_was(world: Net) -> None:
    (s,) = world("S")
    dst = world.tmp / "dst.db"
    dst.write_bytes(b"mine")
    with pytest.raises(peersync.ConfigurationError, match="already exists"):
        peersync.clone(s.url, dst, SCOPE)
    assert dst.read_bytes() == b"mine" and _leftovers(world.tmp) == []


def test_a_destination_that_is_not_a_sqlite_file_is_refused(world: Net) -> None:
    (s,) = world("S")
    with pytest.raises(peersync.ConfigurationError, match="new SQLite database"):
        peersync.clone(s.url, s.url, SCOPE)
    assert s.rows() == [] and _leftovers(world.tmp) == []


def test_a_source_never_provisioned_is_refused_and_leaves_nothing(world: Net) -> None:
    (s,) = world("S")
    s.peer.deprovision(SCOPE)
    dst = world.tmp / "dst.db"
    with pytest.raises(peersync.ScopeError):
        peersync.clone(s.url, dst, SCOPE)
    assert not dst.exists() and _leftovers(world.tmp) == []


class CutSource:
    """A server peer whose snapshot stream breaks after its first chunk of rows."""

    def __init__(self, peer: Any) -> None:
        self.peer = peer

    @contextmanager
    def snapshot_of(self, scope: str) -> Iterator[Snapshot]:
        with self.peer.snapshot_of(scope) as snap:

            def values(i: int) -> Iterator[list[Any]]:
                for chunk in snap.values(i):
                    yield chunk
                    raise peersync.TransportError("connection lost")

            yield dataclasses.replace(snap, values=values)


def test_a_stream_cut_short_leaves_nothing_and_the_source_as_it_was(world: Net) -> None:
    s, p = history(world)
    before = s.knowledge()
    dst = world.tmp / "dst.db"
    with pytest.raises(peersync.TransportError, match="connection lost"):
        clone_from_server(CutSource(s.peer), str(dst), SCOPE)
    assert not dst.exists() and _leftovers(world.tmp) == []
    assert s.knowledge() == before
    # The source's connection is still usable, and a clone made now is whole.
    assert sent(p, s) == (0, 2)
    c = clone(world, s, "C")
    assert c.state() == s.state() == p.state()


def test_the_cli_clones_a_server_replica(world: Net) -> None:
    s, _ = history(world)
    dst = world.tmp / "cli.db"
    out = ok(invoke("clone", s.url, dst, "--scope", SCOPE))
    assert f"cloned scope {SCOPE} of {s.url}" in out.stdout
    conn = sqlite3.connect(dst)
    assert sorted(conn.execute("SELECT id, name, qty FROM item").fetchall()) == s.rows("item")
    conn.close()
    assert_error(invoke("clone", s.url, dst, "--scope", SCOPE), "already exists")
    assert_error(invoke("clone", s.url, world.tmp / "other.db", "--scope", "nope"), "nope")
    assert not (world.tmp / "other.db").exists()
