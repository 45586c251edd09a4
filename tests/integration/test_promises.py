"""One test per promise of docs/design.md ("Promises") that applies to SQLite, on real files
through the public API only.

Writes are made by foreign writers (plain ``sqlite3``). Where a test needs to
know which of two concurrent writes is later, the writer's clock is set
explicitly (SQLite's ``julianday('now')`` overridden on the writer's own
connection), so last-writer-wins outcomes do not depend on timing.
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import pytest

import peersync
from peersync import Conflict, ConflictType, Knowledge, Outcome, Policy, Resolution
from peersync.testing import FaultyPeer, RecordingPeer

from ..helpers import at, rows, write

SCOPE = "s"
TABLES = ["item", "note"]
SCHEMA = """
CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT, qty INTEGER);
CREATE TABLE note (owner TEXT NOT NULL, slug TEXT NOT NULL, body TEXT, PRIMARY KEY (owner, slug));
"""
T0 = (int(time.time()) + 86_400) * 1000 + 500  # writers' clocks: after every real-time write of the run, mid-second


# -- helpers -------------------------------------------------------------------------------------------------------
MakePeers = Callable[..., list[peersync.Database]]


@pytest.fixture
def make_peers(make_db: Callable[..., Path]) -> Iterable[MakePeers]:
    """``make_peers("a", "b", schema=SCHEMA)``: provisioned peers of scope ``s``; a schema per
    name may be given as ``schemas={"b": ...}`` (same shape, different constraints)."""
    opened: list[peersync.Database] = []

    def make(*names: str, schema: str = SCHEMA, schemas: dict[str, str] | None = None) -> list[peersync.Database]:
        out = []
        for name in names:
            db = peersync.connect(make_db(name, (schemas or {}).get(name, schema)))
            db.provision(SCOPE, TABLES)
            opened.append(db)
            out.append(db)
        return out

    yield make
    for db in opened:
        db.close()


def state(db: peersync.Database) -> dict[str, list[tuple[object, ...]]]:
    return {t: rows(db.path, t) for t in TABLES}


def knowledge(db: peersync.Database) -> Knowledge:
    return db.describe(SCOPE).knowledge


def rid(db: peersync.Database) -> bytes:
    return db.describe(SCOPE).replica_id


def settle(dbs: Sequence[peersync.Database], policy: Any = Policy.LAST_WRITER_WINS, batch_size: int = 50) -> None:
    """Sync every pair both ways until a whole round moves nothing."""
    for _ in range(5):
        moved = 0
        for i, a in enumerate(dbs):
            for b in dbs[i + 1 :]:
                res = peersync.sync(a, b, SCOPE, policy=policy, batch_size=batch_size)
                moved += res.sent_a_to_b + res.sent_b_to_a
        if moved == 0:
            return
    raise AssertionError("five rounds still moved changes")


def assert_converged(dbs: Sequence[peersync.Database]) -> dict[str, list[tuple[object, ...]]]:
    first = state(dbs[0])
    for db in dbs[1:]:
        assert state(db) == first, f"{db.path} differs from {dbs[0].path}"
    return first


def received(rec: RecordingPeer) -> list[tuple[str, Any]]:
    """Every change a recording destination received: (table, change)."""
    return [(t, c) for s in rec.received for t, cs in s.batch.changes.items() for c in cs]


def items(n: int, start: int = 1, name: str = "n") -> list[tuple[int, str, int]]:
    return [(i, f"{name}{i}", i) for i in range(start, start + n)]


def insert_items(db: peersync.Database, data: list[tuple[int, str, int]]) -> None:
    conn = sqlite3.connect(db.path)
    with conn:
        conn.executemany("INSERT INTO item VALUES (?, ?, ?)", data)
    conn.close()


# -- promise 3: no redundancy (the loop) ---------------------------------------------------------------------------
def test_loop_returns_nothing_to_its_origin(make_peers: MakePeers) -> None:
    p1, p2, p3 = make_peers("p1", "p2", "p3")
    insert_items(p1, items(30))
    write(p1.path, "UPDATE item SET qty = qty * 10 WHERE id <= 10", "DELETE FROM item WHERE id > 25")
    write(p1.path, ("INSERT INTO note VALUES (?, ?, ?)", ("p1", "hello", "world")))
    rec = RecordingPeer(p1)
    assert peersync.run_session(p1, p2, SCOPE, batch_size=7).sent == 31
    assert peersync.run_session(p2, p3, SCOPE, batch_size=7).sent == 31
    back = peersync.run_session(p3, rec, SCOPE, batch_size=7)
    assert back.sent == 0
    assert received(rec) == []
    assert_converged([p1, p2, p3])
    for a, b in [(p1, p2), (p2, p3), (p3, p1)]:
        again = peersync.run_session(a, b, SCOPE, batch_size=7)
        assert (again.sent, again.applied, again.conflicts) == (0, 0, 0)


def test_loop_with_changes_everywhere_returns_only_others_changes(make_peers: MakePeers) -> None:
    p1, p2, p3 = make_peers("p1", "p2", "p3")
    insert_items(p1, items(10))
    insert_items(p2, items(5, start=100))
    insert_items(p3, items(3, start=200))
    rid1 = rid(p1)
    recs = [RecordingPeer(p) for p in (p1, p2, p3)]
    s12 = peersync.run_session(p1, recs[1], SCOPE, batch_size=4)
    s23 = peersync.run_session(p2, recs[2], SCOPE, batch_size=4)
    s31 = peersync.run_session(p3, recs[0], SCOPE, batch_size=4)
    assert (s12.sent, s23.sent, s31.sent) == (10, 15, 8)  # P1 gets P2's and P3's, none of its own
    assert [c for _, c in received(recs[0]) if c[2][0] == rid1] == []
    assert all(r.redundant() == [] for r in recs)
    # The second time round, only what is new to each destination moves, and then nothing at all.
    s12 = peersync.run_session(p1, recs[1], SCOPE, batch_size=4)
    s23 = peersync.run_session(p2, recs[2], SCOPE, batch_size=4)
    s31 = peersync.run_session(p3, recs[0], SCOPE, batch_size=4)
    assert (s12.sent, s23.sent, s31.sent) == (3, 0, 0)
    assert_converged([p1, p2, p3])
    for a, b in [(p1, p2), (p2, p3), (p3, p1)]:
        assert peersync.run_session(a, b, SCOPE).sent == 0
    assert all(r.redundant() == [] for r in recs)


def test_loop_of_ten_thousand_changes(make_peers: MakePeers) -> None:
    p1, p2, p3 = make_peers("p1", "p2", "p3")
    insert_items(p1, items(10_000))
    rec = RecordingPeer(p1)
    assert peersync.run_session(p1, p2, SCOPE, batch_size=1000).sent == 10_000
    assert peersync.run_session(p2, p3, SCOPE, batch_size=1000).sent == 10_000
    back = peersync.run_session(p3, rec, SCOPE, batch_size=1000)
    assert back.sent == 0 and received(rec) == []
    for a, b in [(p1, p2), (p2, p3), (p3, p1)]:
        assert peersync.run_session(a, b, SCOPE).sent == 0
    assert rows(p3.path, "item") == rows(p1.path, "item")


# -- section 5 of the session: learned knowledge is exact --------------------------------------------------------------
class CutAfterRow(FaultyPeer):
    """A destination whose connection drops right after the batch that carried item ``key``:
    FaultyPeer's ``interrupt_after``, set once that batch is committed. (Cutting "after batch 1"
    would depend on how an engine fills batches; e.g. one may spend a batch on log entries
    that later changes superseded.)"""

    def __init__(self, peer: peersync.Database, key: int) -> None:
        self.rec = RecordingPeer(peer)
        super().__init__(self.rec)
        self.key = key

    def apply(self, scope: str, data: bytes, handler: Any) -> Any:
        report = super().apply(scope, data, handler)
        if any(c[5][0] == self.key for c in self.rec.received[-1].batch.changes.get("item", [])):
            self.interrupt_after = self.applied
        return report


def test_exactness_destination_edit_survives_everywhere(make_peers: MakePeers) -> None:
    """Issue 2's exactness case. S's row r reaches D in the first batch of an interrupted
    session; D edits r; D syncs to P3, which holds S's older version of r, under
    destination-wins. D's edit was made with knowledge of that older version, so it is no
    conflict at P3: the edit must survive there, and everywhere once all syncs finish."""
    s, d, p3 = make_peers("s", "d", "p3")
    write(s.path, "INSERT INTO item VALUES (1, 'r', 1)", "INSERT INTO item VALUES (2, 'a', 1)")
    write(s.path, "INSERT INTO item VALUES (3, 'b', 1)", "INSERT INTO item VALUES (4, 'c', 1)")
    peersync.sync(s, p3, SCOPE, direction="push")  # P3 holds S's first version of r
    write(s.path, "UPDATE item SET qty = 2 WHERE id = 1")  # r first in tick order now
    write(s.path, "UPDATE item SET qty = 2 WHERE id IN (2, 3, 4)")
    cut = CutAfterRow(d, 1)
    with pytest.raises(peersync.TransportError):
        peersync.sync(s, cut, SCOPE, direction="push", batch_size=1)
    assert rows(d.path, "item") == [(1, "r", 2)]
    assert [x.batch.rows for x in cut.rec.received if x.batch.rows] == [1]  # r came in the first non-empty batch
    write(d.path, "UPDATE item SET name = 'edited at D' WHERE id = 1")
    dw = Policy.DESTINATION_WINS
    res = peersync.sync(d, p3, SCOPE, direction="push", policy=dw)
    assert res.conflicts == 0, p3.conflicts(SCOPE)
    assert rows(p3.path, "item")[0] == (1, "edited at D", 2)
    settle([s, d, p3], policy=dw)
    for db in (s, d, p3):
        assert rows(db.path, "item") == [(1, "edited at D", 2), (2, "a", 2), (3, "b", 2), (4, "c", 2)], db.path


def test_exactness_interrupted_session_learns_only_what_arrived(make_peers: MakePeers) -> None:
    """After a session cut after its first batch, the destination knows the source's ticks
    enumerated so far and the versions it received, and nothing more: not the source's
    later ticks, not versions the source holds from a third replica."""
    s, d, q = make_peers("s", "d", "q")
    insert_items(s, items(4))  # S's own ticks 1..4
    insert_items(q, items(3, start=100))
    peersync.sync(q, s, SCOPE, direction="push")  # S holds 3 of Q's versions at its ticks 5..7
    write(s.path, "UPDATE item SET qty = -1 WHERE id = 100")  # and one it changed again
    rec = RecordingPeer(d)
    with pytest.raises(peersync.TransportError):
        peersync.run_session(s, FaultyPeer(rec, interrupt_after=2), SCOPE, batch_size=2)
    got = [c for _, c in received(rec)]
    assert 0 < len(got) < 7 and len(rec.received) == 2
    k = knowledge(d)
    sid, qid = rid(s), rid(q)
    assert k.ranges(sid) == [(1, rec.received[-1].batch.last)]
    assert rec.received[-1].batch.last < s.describe(SCOPE).tick
    assert qid not in k.replicas()  # S's knowledge of Q is merged only when a session completes
    for c in got:  # ... and nothing received is forgotten (which would cause false conflicts)
        assert c[2] in k
    # Completing the session teaches the rest, including Q's versions.
    peersync.run_session(s, d, SCOPE)
    assert knowledge(d).contains_knowledge(s.describe(SCOPE).knowledge.without(rid(d)))
    assert rows(d.path, "item") == rows(s.path, "item")


def test_exactness_partial_session_never_hides_a_conflict(make_peers: MakePeers) -> None:
    """Knowledge that claims too much hides conflicts: D gets only the first batch of S's
    changes, so a concurrent edit on D to a row S changed later must still conflict."""
    s, d = make_peers("s", "d")
    insert_items(s, items(6))
    peersync.sync(s, d, SCOPE)
    at(s.path, T0 + 1000, "UPDATE item SET qty = 100 WHERE id = 1")
    at(s.path, T0 + 2000, "UPDATE item SET qty = 600 WHERE id = 6")
    at(d.path, T0 + 3000, "UPDATE item SET qty = 666 WHERE id = 6")  # later: wins by time
    with pytest.raises(peersync.TransportError):
        peersync.run_session(s, FaultyPeer(d, interrupt_after=1), SCOPE, batch_size=1)
    assert rows(d.path, "item")[0] == (1, "n1", 100)
    res = peersync.sync(s, d, SCOPE)
    assert res.conflicts == 1
    (c,) = d.conflicts(SCOPE)
    assert c.type is ConflictType.UPDATE_UPDATE and c.outcome is Outcome.DESTINATION
    assert rows(d.path, "item") == rows(s.path, "item")
    assert rows(s.path, "item")[-1] == (6, "n6", 666)


@pytest.mark.parametrize("first_writer", ["x", "y"], ids=["one-writer", "two-writers"])
def test_exactness_partial_session_does_not_forget_what_a_row_supersedes(
    make_peers: MakePeers, first_writer: str
) -> None:
    """Knowledge that claims too little causes false conflicts (session, item 5).

    D holds row 1 as first written (by X, or by another replica Y). X then edits the row,
    knowing that first version. S receives X's edit from T in a session whose reply is lost,
    so S learns that version and T's ticks but not the rest of T's knowledge (in particular
    not the first version). S's row supersedes D's, so S -> D is no conflict and must apply;
    a false conflict under destination-wins keeps D's stale row: D then either never gets
    X's edit, or (if the kept row becomes a new change) undoes it everywhere."""
    x, y, t, s, d = make_peers("x", "y", "t", "s", "d")
    dw = Policy.DESTINATION_WINS
    origin = x if first_writer == "x" else y
    write(origin.path, "INSERT INTO item VALUES (1, 'v1', 1)")
    peersync.run_session(origin, d, SCOPE, policy=dw)
    if origin is y:
        peersync.run_session(y, x, SCOPE, policy=dw)
    write(x.path, "UPDATE item SET name = 'v2' WHERE id = 1")
    peersync.run_session(x, t, SCOPE, policy=dw)
    with pytest.raises(peersync.TransportError):
        peersync.run_session(t, FaultyPeer(s, lose_reply_after=0), SCOPE, policy=dw)
    assert rows(s.path, "item") == [(1, "v2", 1)]
    res = peersync.run_session(s, d, SCOPE, policy=dw)
    assert (res.conflicts, d.conflicts(SCOPE)) == (0, [])
    assert rows(d.path, "item") == [(1, "v2", 1)]
    settle([x, y, t, s, d], policy=dw)
    assert assert_converged([x, y, t, s, d])["item"] == [(1, "v2", 1)]


class WriteBetweenBatches(FaultyPeer):
    """A destination (no fault injected) before whose ``before``-th apply someone writes."""

    def __init__(self, peer: peersync.Database, before: int, action: Callable[[], None]) -> None:
        super().__init__(peer)
        self.before, self.action = before, action

    def apply(self, scope: str, data: bytes, handler: Any) -> Any:
        if self.applied == self.before:
            self.action()
        return super().apply(scope, data, handler)


def test_destination_write_between_batches_is_a_conflict_not_overwritten(make_peers: MakePeers) -> None:
    """A local write made after the source enumerated a row and before its batch is applied
    is seen by the apply (inside its transaction) as a concurrent change."""
    s, d = make_peers("s", "d")
    insert_items(s, items(6))
    peersync.sync(s, d, SCOPE)
    at(s.path, T0 + 1000, "UPDATE item SET qty = 100 WHERE id = 1")
    at(s.path, T0 + 2000, "UPDATE item SET qty = 600 WHERE id = 6")
    local = WriteBetweenBatches(d, 1, lambda: at(d.path, T0 + 3000, "UPDATE item SET qty = 666 WHERE id = 6"))
    res = peersync.run_session(s, local, SCOPE, batch_size=1)
    assert (res.batches, res.conflicts) == (2, 1)
    (c,) = d.conflicts(SCOPE)
    assert (c.key, c.local_row, c.outcome) == ((6,), {"id": 6, "name": "n6", "qty": 666}, Outcome.DESTINATION)
    peersync.sync(s, d, SCOPE)
    assert assert_converged([s, d])["item"] == [(1, "n1", 100), *items(4, start=2), (6, "n6", 666)]


def test_source_write_between_batches_comes_next_session(make_peers: MakePeers) -> None:
    s, d = make_peers("s", "d")
    insert_items(s, items(6))
    meddle = [
        "UPDATE item SET qty = 0 WHERE id IN (1, 6)",
        "DELETE FROM item WHERE id = 2",
        "INSERT INTO item VALUES (7, 'n7', 7)",
    ]
    rec = RecordingPeer(WriteBetweenBatches(d, 2, lambda: write(s.path, *meddle)))
    peersync.run_session(s, rec, SCOPE, batch_size=2)
    rest = peersync.run_session(s, rec, SCOPE, batch_size=2)
    assert rest.sent == 4 and rec.redundant() == []
    assert assert_converged([s, d])["item"] == [(1, "n1", 0), *items(3, start=3), (6, "n6", 0), (7, "n7", 7)]


# -- promise 2: no lost update, and one winner whatever the order ------------------------------------------------------
def test_concurrent_updates_conflict_and_last_writer_wins(make_peers: MakePeers) -> None:
    a, b = make_peers("a", "b")
    insert_items(a, items(2))
    peersync.sync(a, b, SCOPE)
    at(b.path, T0 + 1000, "UPDATE item SET name = 'b' WHERE id = 1")
    at(a.path, T0 + 2000, "UPDATE item SET name = 'a' WHERE id = 1")  # later: wins
    at(a.path, T0 + 3000, "UPDATE item SET name = 'a' WHERE id = 2")
    at(b.path, T0 + 4000, "UPDATE item SET name = 'b' WHERE id = 2")  # later: wins
    res = peersync.sync(a, b, SCOPE)
    assert res.conflicts == 2
    assert rows(a.path, "item") == rows(b.path, "item") == [(1, "a", 1), (2, "b", 2)]
    log = sorted(b.conflicts(SCOPE), key=lambda c: c.key)
    assert [(c.key, c.type, c.outcome) for c in log] == [
        ((1,), ConflictType.UPDATE_UPDATE, Outcome.SOURCE),
        ((2,), ConflictType.UPDATE_UPDATE, Outcome.DESTINATION),
    ]
    assert log[0].local_row == {"id": 1, "name": "b", "qty": 1}
    assert log[0].remote_row == {"id": 1, "name": "a", "qty": 1}
    assert (log[0].local_time, log[0].remote_time) == (T0 + 1000, T0 + 2000)
    assert log[0].local_version is not None and log[0].local_version[0] == rid(b)
    assert log[0].remote_version[0] == rid(a)
    assert log[0].policy == Policy.LAST_WRITER_WINS.value
    assert peersync.conflicts(str(b.path), SCOPE) == b.conflicts(SCOPE)


ORDERS = {
    "a-first": [("a", "c"), ("b", "c"), ("a", "b")],
    "b-first": [("b", "c"), ("a", "c"), ("b", "a")],
    "through-c": [("c", "a"), ("c", "b"), ("a", "c"), ("b", "c")],
}


def _three_way_edits(make_db: Callable[..., Path], tmp_path: Path, skew: dict[str, int]) -> list[Path]:
    """A, B and C hold row 1; then A and B edit it concurrently, and C edits it after seeing A's
    edit. Writers' clocks are T0 + 1 s per write plus a per-replica ``skew``."""
    paths = [make_db(n, SCHEMA) for n in "abc"]
    dbs = [peersync.connect(p) for p in paths]
    try:
        for db in dbs:
            db.provision(SCOPE, TABLES)
        a, b, c = dbs
        write(a.path, "INSERT INTO item VALUES (1, 'v0', 0)")
        peersync.sync(a, b, SCOPE)
        peersync.sync(a, c, SCOPE)
        at(a.path, T0 + 1000 + skew.get("a", 0), "UPDATE item SET name = 'a' WHERE id = 1")
        at(b.path, T0 + 2000 + skew.get("b", 0), "UPDATE item SET name = 'b' WHERE id = 1")
        peersync.run_session(a, c, SCOPE)
        at(c.path, T0 + 3000 + skew.get("c", 0), "UPDATE item SET name = 'c' WHERE id = 1")
    finally:
        for db in dbs:
            db.close()
    return paths


def _replay(paths: list[Path], folder: Path, order: list[tuple[str, str]]) -> dict[str, Any]:
    """Copy the three databases (a world of their own) and sync them in ``order``, then settle."""
    folder.mkdir()
    copies = {p.stem: shutil.copy(p, folder / p.name) for p in paths}
    dbs = {name: peersync.connect(path) for name, path in copies.items()}
    for db in dbs.values():  # the copies replace their originals in this world
        db.reidentify(SCOPE, moved=True)
    try:
        for x, y in order:
            peersync.run_session(dbs[x], dbs[y], SCOPE)
        settle(list(dbs.values()))
        return {name: rows(db.path, "item") for name, db in dbs.items()}
    finally:
        for db in dbs.values():
            db.close()


@pytest.mark.parametrize("skew", [{}, {"b": -1500, "c": -10_000}], ids=["clocks-agree", "clocks-of-b-and-c-behind"])
def test_same_winner_whatever_the_order(make_db: Callable[..., Path], tmp_path: Path, skew: dict[str, int]) -> None:
    """Copies of one starting state, synced in different orders, end with the same rows.

    With agreeing clocks C's edit is the latest write and must win. With B's clock behind
    A's and C's far behind (so A's edit is the latest by the clocks, then B's, then C's,
    although C's was made after seeing A's), which write wins is up to last-writer-wins,
    but it must be the same one in every order and on every replica (docs/design.md,
    "Conflicts": last writer wins)."""
    paths = _three_way_edits(make_db, tmp_path, skew)
    finals = {name: _replay(paths, tmp_path / name, order) for name, order in ORDERS.items()}
    for name, final in finals.items():
        assert final["a"] == final["b"] == final["c"], f"order {name} did not converge: {final}"
    outcomes = {name: final["a"] for name, final in finals.items()}
    assert len(set(map(repr, outcomes.values()))) == 1, f"orders disagree: {outcomes}"
    if not skew:
        assert outcomes["a-first"] == [(1, "c", 0)]


def test_skewed_clock_minimal_divergence(make_peers: MakePeers) -> None:
    """The smallest case of the order dependence above (a regression test for it).

    C edits row 1 after receiving A's version, with a clock 5 s behind A's. B receives C's
    edit in a session whose reply is lost (so B learns C's version but not A's), then A's
    version: B sees a conflict and last-writer-wins picks A's (later by the clocks). A and
    C keep C's edit, which was made with knowledge of A's. Each side now knows the other's
    version, so nothing is ever sent again: B holds 'a', A and C hold 'c', for good."""
    a, b, c = make_peers("a", "b", "c")
    at(a.path, T0 + 10_000, "INSERT INTO item VALUES (1, 'a', 0)")
    peersync.run_session(a, c, SCOPE)
    at(c.path, T0 + 5_000, "UPDATE item SET name = 'c' WHERE id = 1")  # after A's write, clock behind
    with pytest.raises(peersync.TransportError):
        peersync.run_session(c, FaultyPeer(b, lose_reply_after=0), SCOPE)
    peersync.run_session(a, b, SCOPE)
    settle([a, b, c])
    assert_converged([a, b, c])


# -- conflict types ----------------------------------------------------------------------------------------------------
def test_every_conflict_type_is_detected_classified_logged_and_converges(make_peers: MakePeers) -> None:
    a, b, c = make_peers("a", "b", "c")
    insert_items(a, [(1, "uu", 0), (2, "ud", 0), (3, "du", 0), (5, "dd", 0)])
    settle([a, b, c])
    # B writes first for keys where A must win, A writes first for keys where B must win.
    at(a.path, T0 + 1000, "UPDATE item SET qty = 1 WHERE id = 2", "INSERT INTO item VALUES (4, 'ii-a', 1)")
    at(
        b.path,
        T0 + 2000,
        "UPDATE item SET qty = 2 WHERE id IN (1, 2)",
        "DELETE FROM item WHERE id IN (3, 5)",
        "INSERT INTO item VALUES (4, 'ii-b', 2)",
    )
    at(a.path, T0 + 3000, "UPDATE item SET qty = 3 WHERE id IN (1, 3)", "DELETE FROM item WHERE id IN (2, 5)")
    res = peersync.run_session(a, b, SCOPE)
    assert res.conflicts == 5
    log = {c_.key[0]: c_ for c_ in b.conflicts(SCOPE)}
    assert {k: (v.type, v.outcome) for k, v in log.items()} == {
        1: (ConflictType.UPDATE_UPDATE, Outcome.SOURCE),
        2: (ConflictType.UPDATE_DELETE, Outcome.SOURCE),  # B updated, A deleted later
        3: (ConflictType.DELETE_UPDATE, Outcome.SOURCE),  # B deleted, A updated later
        4: (ConflictType.INSERT_INSERT, Outcome.DESTINATION),  # B inserted later
        5: (ConflictType.DELETE_DELETE, Outcome.SOURCE),
    }
    sides = {k: (v.local_row, v.remote_row) for k, v in log.items()}
    assert sides == {
        1: ({"id": 1, "name": "uu", "qty": 2}, {"id": 1, "name": "uu", "qty": 3}),
        2: ({"id": 2, "name": "ud", "qty": 2}, None),
        3: (None, {"id": 3, "name": "du", "qty": 3}),
        4: ({"id": 4, "name": "ii-b", "qty": 2}, {"id": 4, "name": "ii-a", "qty": 1}),
        5: (None, None),
    }
    for v in log.values():
        assert v.table == "item" and v.scope == SCOPE and v.policy == "last-writer-wins"
        assert v.local_version is not None and v.local_version[0] == rid(b) and v.remote_version[0] == rid(a)
        assert v.local_time == T0 + 2000
        assert v.remote_time == (T0 + 1000 if v.key == (4,) else T0 + 3000)
        assert v.id is not None and v.logged_at is not None
    settle([a, b, c])
    assert assert_converged([a, b, c])["item"] == [(1, "uu", 3), (3, "du", 3), (4, "ii-b", 2)]


# -- policies ----------------------------------------------------------------------------------------------------------
def _concurrent_edit(make_peers: MakePeers) -> list[peersync.Database]:
    """A, B, C hold row 1; A then B (later) change it concurrently."""
    a, b, c = make_peers("a", "b", "c")
    write(a.path, "INSERT INTO item VALUES (1, 'x', 10)")
    settle([a, b, c])
    at(a.path, T0 + 1000, "UPDATE item SET name = 'from a', qty = 11 WHERE id = 1")
    at(b.path, T0 + 2000, "UPDATE item SET name = 'from b', qty = 12 WHERE id = 1")
    return [a, b, c]


@pytest.mark.parametrize(
    ("policy", "winner"),
    [
        (Policy.LAST_WRITER_WINS, "from b"),
        (Policy.SOURCE_WINS, "from a"),
        (Policy.DESTINATION_WINS, "from b"),
        (lambda c: Outcome.SOURCE, "from a"),
        (lambda c: Outcome.DESTINATION, "from b"),
        (lambda c: Resolution(Outcome.SOURCE), "from a"),
    ],
    ids=["lww", "source-wins", "destination-wins", "callback-source", "callback-destination", "resolution-source"],
)
def test_policy_decides_and_every_replica_follows(make_peers: MakePeers, policy: Any, winner: str) -> None:
    a, b, c = _concurrent_edit(make_peers)
    res = peersync.run_session(a, b, SCOPE, policy=policy)  # B is the destination of the conflict
    assert res.conflicts == 1
    assert rows(b.path, "item")[0][1] == winner
    (logged,) = b.conflicts(SCOPE)
    assert logged.outcome is (Outcome.SOURCE if winner == "from a" else Outcome.DESTINATION)
    expected_policy = policy.value if isinstance(policy, Policy) else "callback:"
    assert logged.policy.startswith(expected_policy)
    settle([a, b, c], policy=policy)
    assert assert_converged([a, b, c])["item"][0][1] == winner


@pytest.mark.parametrize("policy", [Policy.DESTINATION_WINS, Policy.SOURCE_WINS])
def test_two_replicas_resolving_one_conflict_still_converge(make_peers: MakePeers, policy: Policy) -> None:
    """Convergence (promise 1) holds whatever the history, so also under a policy that is not
    last-writer-wins: A's and B's concurrent edits reach C and B (from A) and D and C (from B)
    by different routes, so B and C each resolve the conflict once, in opposite ways. Each
    then knows the other's version, so neither version is ever sent again: unless resolving
    a conflict makes the kept row a new change, B and C stay different for good."""
    a, b, c, d = make_peers("a", "b", "c", "d")
    write(a.path, "INSERT INTO item VALUES (1, 'v0', 1)")
    settle([a, b, c, d])
    write(a.path, "UPDATE item SET name = 'a' WHERE id = 1")
    write(b.path, "UPDATE item SET name = 'b' WHERE id = 1")
    peersync.run_session(a, c, SCOPE, policy=policy)
    peersync.run_session(b, d, SCOPE, policy=policy)
    assert peersync.run_session(c, b, SCOPE, policy=policy).conflicts == 1
    assert peersync.run_session(d, c, SCOPE, policy=policy).conflicts == 1
    settle([a, b, c, d], policy=policy)
    assert_converged([a, b, c, d])


def test_callback_sees_both_sides(make_peers: MakePeers) -> None:
    a, b, _ = _concurrent_edit(make_peers)
    seen: list[Conflict] = []

    def keep_local(c: Conflict) -> Outcome:
        seen.append(c)
        return Outcome.DESTINATION

    peersync.run_session(a, b, SCOPE, policy=keep_local)
    (c,) = seen
    assert (c.scope, c.table, c.key, c.type) == (SCOPE, "item", (1,), ConflictType.UPDATE_UPDATE)
    assert c.local_row == {"id": 1, "name": "from b", "qty": 12}
    assert c.remote_row == {"id": 1, "name": "from a", "qty": 11}
    assert (c.local_time, c.remote_time) == (T0 + 2000, T0 + 1000)


def test_merge_callback_row_reaches_every_replica(make_peers: MakePeers) -> None:
    a, b, c = _concurrent_edit(make_peers)

    def merge(conflict: Conflict) -> Resolution:
        assert conflict.local_row is not None and conflict.remote_row is not None
        name = f"{conflict.remote_row['name']} + {conflict.local_row['name']}"
        return Resolution(
            Outcome.MERGE, row={"name": name, "qty": conflict.local_row["qty"] + conflict.remote_row["qty"]}
        )

    res = peersync.run_session(a, b, SCOPE, policy=merge)
    assert res.conflicts == 1
    assert rows(b.path, "item") == [(1, "from a + from b", 23)]
    assert [x.outcome for x in b.conflicts(SCOPE)] == [Outcome.MERGE]
    settle([a, b, c], policy=merge)
    assert assert_converged([a, b, c])["item"] == [(1, "from a + from b", 23)]
    assert len(b.conflicts(SCOPE)) + len(a.conflicts(SCOPE)) + len(c.conflicts(SCOPE)) == 1


def test_merged_row_that_fails_a_constraint_is_an_error_not_an_abort(make_peers: MakePeers) -> None:
    """A merged row is applied like any other: a constraint it breaks is logged as an
    error and the rest of the session goes on (docs/design.md, "Conflicts": an
    error never aborts a session)."""
    checked = SCHEMA.replace("qty INTEGER", "qty INTEGER CHECK (qty < 100)")
    a, b = make_peers("a", "b", schema=checked)
    insert_items(a, items(3))
    peersync.sync(a, b, SCOPE)
    at(a.path, T0 + 1000, "UPDATE item SET qty = 11 WHERE id = 1", "UPDATE item SET name = 'ok' WHERE id = 3")
    at(b.path, T0 + 2000, "UPDATE item SET qty = 12 WHERE id = 1")
    res = peersync.run_session(a, b, SCOPE, policy=lambda c: Resolution(Outcome.MERGE, row={"qty": 1000}))
    assert res.completed
    assert rows(b.path, "item")[2] == (3, "ok", 3)
    assert any(c.type is ConflictType.ERROR for c in b.conflicts(SCOPE))


def test_defer_leaves_the_row_and_asks_again_next_session(make_peers: MakePeers) -> None:
    a, b, c = _concurrent_edit(make_peers)
    write(a.path, "INSERT INTO item VALUES (2, 'other', 2)")  # non-conflicting rows still apply
    calls: list[Conflict] = []

    def later(conflict: Conflict) -> Outcome:
        calls.append(conflict)
        return Outcome.DEFER

    first = peersync.run_session(a, b, SCOPE, policy=later)
    assert (first.conflicts, first.deferred, len(calls)) == (1, 1, 1)
    assert rows(b.path, "item") == [(1, "from b", 12), (2, "other", 2)]
    assert calls[0].remote_version not in knowledge(b)  # kept out: it comes again
    assert [x.outcome for x in b.conflicts(SCOPE)] == [Outcome.DEFER]
    second = peersync.run_session(a, b, SCOPE, policy=later)
    assert (second.sent, second.deferred, len(calls)) == (1, 1, 2)
    assert calls[1].remote_version == calls[0].remote_version
    assert rows(b.path, "item")[0] == (1, "from b", 12)
    settle([a, b, c])  # last writer wins once nobody defers
    assert assert_converged([a, b, c])["item"] == [(1, "from b", 12), (2, "other", 2)]


def test_callback_that_raises_defers_and_the_session_goes_on(make_peers: MakePeers) -> None:
    a, b, _ = _concurrent_edit(make_peers)
    write(a.path, "INSERT INTO item VALUES (2, 'other', 2)")

    def broken(conflict: Conflict) -> Outcome:
        raise RuntimeError("bug in user code")

    res = peersync.run_session(a, b, SCOPE, policy=broken)
    assert (res.completed, res.conflicts, res.deferred) == (True, 1, 1)
    assert rows(b.path, "item") == [(1, "from b", 12), (2, "other", 2)]
    (logged,) = b.conflicts(SCOPE)
    assert logged.outcome is Outcome.DEFER and "bug in user code" in logged.detail


# -- promise 5: idempotent re-delivery, resumable sessions -------------------------------------------------------------
def _source_with_history(db: peersync.Database) -> None:
    insert_items(db, items(20))
    write(db.path, "UPDATE item SET qty = qty + 100 WHERE id % 3 = 0", "DELETE FROM item WHERE id % 5 = 0")
    write(db.path, ("INSERT INTO note VALUES (?, ?, ?)", ("a", "x", "y")))


def test_duplicated_batches_change_nothing(make_peers: MakePeers) -> None:
    a, b = make_peers("a", "b")
    insert_items(b, [(1001, "b's", 1)])
    peersync.sync(a, b, SCOPE)
    _source_with_history(a)
    write(a.path, "UPDATE item SET name = 'a edits' WHERE id = 1001")
    at(b.path, T0, "UPDATE item SET name = 'b edits' WHERE id = 1001")  # a conflict B wins, delivered twice
    res = peersync.run_session(a, FaultyPeer(b, duplicate=True), SCOPE, batch_size=4)
    assert res.completed and res.skipped_known > 0
    assert len(b.conflicts(SCOPE)) == 1  # the duplicate was recognized as known, not a new conflict
    assert rows(b.path, "item") == [*rows(a.path, "item")[:-1], (1001, "b edits", 1)]
    assert rows(b.path, "note") == [("a", "x", "y")]
    again = peersync.sync(a, b, SCOPE)
    assert (again.sent_a_to_b, again.sent_b_to_a, again.conflicts) == (0, 1, 0)
    assert_converged([a, b])
    assert len(a.conflicts(SCOPE)) == 0


@pytest.mark.parametrize("lose_after", [0, 1, 3])
def test_lost_replies_resume_without_resending(make_peers: MakePeers, lose_after: int) -> None:
    a, b = make_peers("a", "b")
    _source_with_history(a)
    total = peersync.run_session(a, make_peers("probe")[0], SCOPE).sent
    rec = RecordingPeer(b)
    with pytest.raises(peersync.TransportError):
        peersync.run_session(a, FaultyPeer(rec, lose_reply_after=lose_after), SCOPE, batch_size=4)
    assert len(rec.received) == lose_after + 1  # each of them committed, the last one's reply lost
    committed = len(received(rec))
    rest = peersync.run_session(a, rec, SCOPE, batch_size=4)
    assert rest.sent == total - committed
    assert rec.redundant() == [] and b.conflicts(SCOPE) == []
    assert peersync.sync(a, b, SCOPE).sent_a_to_b == 0
    assert_converged([a, b])


@pytest.mark.parametrize("k", [0, 1, 2, 4, 7])
def test_interrupted_session_resumes_with_exactly_the_rest(make_peers: MakePeers, k: int) -> None:
    """Cut after ``k`` batches: the destination holds exactly what those batches carried, and
    the next session sends exactly the other rows (17 rows, one change each)."""
    a, b = make_peers("a", "b")
    insert_items(a, items(17))
    write(a.path, "UPDATE item SET qty = 0 WHERE id <= 4")
    rec = RecordingPeer(b)
    cut = FaultyPeer(rec, interrupt_after=k)
    try:
        peersync.run_session(a, cut, SCOPE, batch_size=3)
    except peersync.TransportError:
        assert len(rec.received) == k
    committed = len(received(rec))
    assert len(rows(b.path, "item")) == committed
    rest = peersync.run_session(a, rec, SCOPE, batch_size=3)
    assert rest.sent == 17 - committed
    assert rec.redundant() == []
    assert_converged([a, b])


# -- promise 4: no resurrection ----------------------------------------------------------------------------------------
def test_deleted_row_stays_deleted_when_an_older_version_arrives(make_peers: MakePeers) -> None:
    a, b, c = make_peers("a", "b", "c")
    insert_items(a, items(3))
    write(a.path, ("INSERT INTO note VALUES (?, ?, ?)", ("o", "s", "v1")))
    settle([a, b, c])
    write(c.path, "UPDATE item SET qty = 20 WHERE id = 2")  # C's newer version of row 2...
    peersync.sync(c, a, SCOPE)  # ... which A sees before deleting it
    write(a.path, "DELETE FROM item WHERE id IN (1, 2)", "DELETE FROM note")
    peersync.run_session(a, b, SCOPE)
    # B (deleted) now hears from C, which holds the older versions and has not seen the delete.
    stale = peersync.run_session(c, b, SCOPE)
    assert stale.sent == 0 and stale.conflicts == 0
    assert rows(b.path, "item") == [(3, "n3", 3)] and rows(b.path, "note") == []
    settle([a, b, c])
    assert assert_converged([a, b, c]) == {"item": [(3, "n3", 3)], "note": []}


def test_delete_arriving_in_a_partial_session_is_not_undone(make_peers: MakePeers) -> None:
    a, b, c = make_peers("a", "b", "c")
    insert_items(a, items(6))
    settle([a, b, c])
    write(a.path, "DELETE FROM item WHERE id = 1")
    write(a.path, "UPDATE item SET qty = 0 WHERE id > 1")
    with pytest.raises(peersync.TransportError):
        peersync.run_session(a, FaultyPeer(b, interrupt_after=1), SCOPE, batch_size=1)
    assert [r[0] for r in rows(b.path, "item")] == [2, 3, 4, 5, 6]
    assert peersync.sync(c, b, SCOPE, direction="push").sent_a_to_b == 0
    settle([a, b, c])
    assert [r[0] for r in assert_converged([a, b, c])["item"]] == [2, 3, 4, 5, 6]


# -- errors in one row -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("constraint", ["check", "unique"])
def test_failed_row_is_logged_kept_out_of_knowledge_and_sent_again(make_peers: MakePeers, constraint: str) -> None:
    strict = (
        SCHEMA.replace("qty INTEGER", "qty INTEGER CHECK (qty >= 0)")
        if constraint == "check"
        else SCHEMA + "CREATE UNIQUE INDEX item_name ON item (name);"
    )
    a, b = make_peers("a", "b", schemas={"b": strict})
    if constraint == "unique":
        write(b.path, "INSERT INTO item VALUES (99, 'n3', 0)")
        bad = [(1, "n1", 1), (2, "n2", 2), (3, "n3", 3), (4, "n4", 4), (5, "n5", 5)]
    else:
        bad = [(1, "n1", 1), (2, "n2", 2), (3, "n3", -3), (4, "n4", 4), (5, "n5", 5)]
    insert_items(a, bad)
    res = peersync.run_session(a, b, SCOPE, batch_size=2)
    assert res.completed and res.errors == 1
    have = [r for r in rows(b.path, "item") if r[0] != 99]
    assert have == [r for r in bad if r[0] != 3]
    (err,) = b.conflicts(SCOPE)
    assert (err.type, err.outcome, err.key, err.remote_row) == (
        ConflictType.ERROR,
        Outcome.FAILED,
        (3,),
        dict(zip(("id", "name", "qty"), bad[2], strict=True)),
    )
    assert err.detail
    assert err.remote_version not in knowledge(b)
    again = peersync.run_session(a, b, SCOPE)
    assert (again.sent, again.errors) == (1, 1)
    write(a.path, "UPDATE item SET qty = 3, name = 'fixed' WHERE id = 3")
    fixed = peersync.run_session(a, b, SCOPE)
    assert (fixed.sent, fixed.applied, fixed.errors) == (1, 1, 0)
    assert (3, "fixed", 3) in rows(b.path, "item")
    assert peersync.run_session(a, b, SCOPE).sent == 0


# -- promise 8: foreign writers ----------------------------------------------------------------------------------------
FOREIGN_STEPS: list[tuple[str, list[str]]] = [
    (
        "insert",
        [
            "INSERT INTO item VALUES (1, 'a', 1), (2, 'b', 2), (3, 'c', 3)",
            "INSERT INTO note VALUES ('o', 'x', 'body'), ('o', 'y', NULL)",
        ],
    ),
    (
        "insert or replace",
        ["INSERT OR REPLACE INTO item VALUES (2, 'b2', 20)", "REPLACE INTO note VALUES ('o', 'x', 'body2')"],
    ),
    (
        "upsert",
        [
            "INSERT INTO item VALUES (3, 'c', 0) ON CONFLICT (id) DO UPDATE SET qty = excluded.qty + 30",
            "INSERT INTO item VALUES (4, 'd', 4) ON CONFLICT (id) DO UPDATE SET qty = 0",
            "INSERT INTO note VALUES ('o', 'y', 'b') ON CONFLICT (owner, slug) DO UPDATE SET body = 'upserted'",
        ],
    ),
    ("update of the key", ["UPDATE item SET id = 10 WHERE id = 1", "UPDATE note SET slug = 'z' WHERE slug = 'x'"]),
    ("update of every row", ["UPDATE item SET qty = qty + 1"]),
    ("update to a key deleted before", ["DELETE FROM item WHERE id = 4", "UPDATE item SET id = 4 WHERE id = 10"]),
    ("delete", ["DELETE FROM item WHERE id = 2", "DELETE FROM note WHERE owner = 'o' AND slug = 'y'"]),
    ("insert over a tombstone", ["INSERT INTO item VALUES (2, 'again', 2)"]),
]


@pytest.mark.parametrize("where", ["source", "destination"])
def test_foreign_writes_are_tracked_and_synced(make_peers: MakePeers, where: str) -> None:
    a, b = make_peers("a", "b")
    writer, other = (a, b) if where == "source" else (b, a)
    for step, statements in FOREIGN_STEPS:
        write(writer.path, *statements)
        res = peersync.sync(a, b, SCOPE, batch_size=2)
        assert res.conflicts == 0 and res.errors == 0, step
        assert state(other) == state(writer), step
        assert res.sent_a_to_b + res.sent_b_to_a > 0, step
    assert rows(a.path, "item") == [(2, "again", 2), (3, "c", 31), (4, "a", 2)]
    assert rows(a.path, "note") == [("o", "z", "body2")]


def test_update_that_changes_nothing_sends_nothing(make_peers: MakePeers) -> None:
    a, b = make_peers("a", "b")
    insert_items(a, items(3))
    peersync.sync(a, b, SCOPE)
    tick = a.describe(SCOPE).tick
    write(a.path, "UPDATE item SET qty = qty", "UPDATE item SET name = 'n2' WHERE id = 2")
    assert a.describe(SCOPE).tick == tick
    assert peersync.sync(a, b, SCOPE).sent_a_to_b == 0


def test_replace_that_evicts_another_row_through_a_unique_column(make_peers: MakePeers) -> None:
    """``INSERT OR REPLACE`` deletes any row that collides on a UNIQUE column, and SQLite runs
    no delete trigger for that (unless recursive_triggers is on in the writer's connection).
    The evicted row must still be deleted on every peer."""
    unique = SCHEMA.replace("name TEXT", "name TEXT UNIQUE")
    a, b = make_peers("a", "b", schema=unique)
    write(a.path, "INSERT INTO item VALUES (1, 'x', 1), (2, 'y', 2), (4, 'z', 4)")
    peersync.sync(a, b, SCOPE)
    write(a.path, "INSERT OR REPLACE INTO item VALUES (3, 'x', 3)")  # evicts row 1
    assert rows(a.path, "item") == [(2, "y", 2), (3, "x", 3), (4, "z", 4)]
    res = peersync.sync(a, b, SCOPE)
    assert res.errors == 0
    assert_converged([a, b])
    write(b.path, "UPDATE OR REPLACE item SET name = 'y' WHERE id = 4")  # evicts row 2, on the other side
    assert rows(b.path, "item") == [(3, "x", 3), (4, "y", 4)]
    res = peersync.sync(a, b, SCOPE)
    assert res.errors == 0
    assert_converged([a, b])


# -- promise 9: a truncated batch changes nothing ----------------------------------------------------------------------
@pytest.mark.parametrize("after", [0, 1])
def test_truncated_batch_is_refused_and_changes_nothing(make_peers: MakePeers, after: int) -> None:
    a, b = make_peers("a", "b")
    insert_items(a, items(9))
    write(b.path, "INSERT INTO item VALUES (100, 'b', 0)")
    rec = RecordingPeer(FaultyPeer(b, truncate_after=after))
    with pytest.raises(peersync.ProtocolError):
        peersync.run_session(a, rec, SCOPE, batch_size=4)
    # The truncated batch is the last one the recorder saw; its "before" is the state to keep.
    assert knowledge(b) == rec.received[-1].known_before
    applied = sorted(c[5][0] for x in rec.received[:-1] for c in x.batch.changes.get("item", []))
    assert len(applied) == 4 * after
    assert [r[0] for r in rows(b.path, "item")] == [*applied, 100]
    assert b.conflicts(SCOPE) == []
    peersync.sync(a, b, SCOPE)
    assert_converged([a, b])
