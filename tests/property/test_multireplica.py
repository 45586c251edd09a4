"""A randomized multi-replica model of peersync (SEMANTICS.md promises 1 to 5).

Three to five SQLite replicas of one scope over two tables (an INTEGER primary
key and a composite text key). Foreign writers (plain ``sqlite3``) insert,
update, delete, re-key, ``INSERT OR REPLACE`` and upsert rows on random
replicas, interleaved with sessions between random pairs in random directions,
with random batch sizes and faults (a dropped connection or a lost reply after
a random number of batches, duplicated delivery). A final full round then syncs
every pair both ways until nothing moves, and the test checks:

- convergence: all replicas hold identical rows, and identical knowledge;
- the rows are exactly what the reference model predicts;
- no change was ever sent to a replica whose knowledge contained it
  (``RecordingPeer.redundant()``), and the final round's last pass sends 0;
- no deleted row came back, and no row failed to apply.

The reference model is exact because every foreign writer's clock is a shared
fake clock (SQLite's ``julianday('now')`` overridden on the writer's own
connection) that advances one second per write: change times are then unique
and consistent with the order of writes, so last-writer-wins must leave, for
every key, the last write made to it anywhere (a value, or its absence).

Hypothesis prints the failing list of operations; ``note`` lines replay it.
``PEERSYNC_MODEL_EXAMPLES`` sets the number of examples (default 200).
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, example, given, note, settings
from hypothesis import strategies as st

import peersync
from peersync.testing import FaultyPeer, RecordingPeer

SCOPE = "s"
TABLES = ["item", "note"]
SCHEMA = """
CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT, qty INTEGER);
CREATE TABLE note (owner TEXT NOT NULL, slug TEXT NOT NULL, body TEXT, PRIMARY KEY (owner, slug));
"""
EXAMPLES = int(os.environ.get("PEERSYNC_MODEL_EXAMPLES", "200"))
MODEL_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SMALL_SETTINGS = settings(
    max_examples=max(20, EXAMPLES // 2),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

Key = tuple[Any, ...]  # (table, *primary key)
Row = tuple[Any, ...]
DAY_MS = 86_400_000.0
UNIX_EPOCH_JD = 2440587.5


# -- operations ----------------------------------------------------------------------------------------------------
replica = st.integers(0, 4)  # taken modulo the number of replicas
table = st.sampled_from(TABLES)
pick = st.integers(0, 1_000)  # which existing row, modulo how many there are
writes = st.one_of(
    st.tuples(st.just("insert"), replica, table, st.integers(1, 3)),
    st.tuples(st.just("update"), replica, table, pick),
    st.tuples(st.just("delete"), replica, table, pick),
    st.tuples(st.just("rekey"), replica, pick),
    st.tuples(st.just("replace"), replica, table, pick),
    st.tuples(st.just("upsert"), replica, table, pick),
    st.tuples(st.just("reinsert"), replica, table, pick),
)
fault = st.one_of(
    st.none(),
    st.tuples(st.just("interrupt"), st.integers(0, 4)),
    st.tuples(st.just("lose"), st.integers(0, 3)),
    st.just(("duplicate",)),
    # a foreign write anywhere, made before a destination's n-th apply (between batches)
    st.tuples(st.just("meddle"), st.integers(0, 3), writes),
)
session = st.tuples(
    st.just("session"), replica, replica, st.sampled_from(["push", "pull", "both"]), st.integers(1, 7), fault
)
operations = st.lists(st.one_of(writes, session), min_size=1, max_size=40)
# A few hot rows of one table, written everywhere: conflicts on every other step.
hot_writes = st.one_of(
    st.tuples(st.just("insert"), replica, st.just("item"), st.just(1)),
    st.tuples(st.just("update"), replica, st.just("item"), pick),
    st.tuples(st.just("delete"), replica, st.just("item"), pick),
)
hot_operations = st.lists(st.one_of(hot_writes, hot_writes, session), min_size=1, max_size=30)


# -- the world -------------------------------------------------------------------------------------------------------
class Clock:
    """A fake wall clock shared by all foreign writers, one second per write.

    ``skew`` shifts one replica's writers (clocks of different machines).
    """

    def __init__(self) -> None:
        self.ms = (int(time.time()) - 100_000) * 1000 + 500  # mid-second: no rounding at the ms boundary
        self.skew: dict[int, int] = {}

    def tick(self) -> None:
        self.ms += 1000

    def julianday(self, replica: int) -> Any:
        def jd(arg: str, *_: object) -> float | None:
            if arg != "now":
                return None
            # + 0.5 ms: SQLite truncates the computed milliseconds, and the double is only that exact.
            return (self.ms + self.skew.get(replica, 0) + 0.5) / DAY_MS + UNIX_EPOCH_JD

        return jd


@dataclass
class Replica:
    index: int
    path: Path
    db: peersync.Database
    writer: sqlite3.Connection
    owned: int = 0  # keys this replica created so far (its own key space)


@dataclass
class World:
    replicas: list[Replica]
    clock: Clock
    collide: bool = False  # draw keys from a small shared space instead of per-replica ones
    keys: int = 4  # the size of that space
    history: dict[Key, list[Row | None]] = field(default_factory=dict)  # every write per key, in order
    recorders: list[RecordingPeer] = field(default_factory=list)
    seq: int = 0

    # -- keys and values
    def fresh_key(self, r: Replica, tbl: str, n: int) -> Key:
        if self.collide:
            return (tbl, n % self.keys + 1) if tbl == "item" else (tbl, "shared", f"n{n % self.keys}")
        r.owned += 1
        return (tbl, r.index * 1_000_000 + r.owned) if tbl == "item" else (tbl, f"r{r.index}", f"n{r.owned}")

    def value(self, key: Key) -> Row:
        """A row for ``key`` that differs from every earlier write (so updates are never no-ops)."""
        marker = f"w{self.seq}"
        return (*key[1:], marker, self.seq) if key[0] == "item" else (*key[1:], marker)

    def rows(self, r: Replica, tbl: str) -> list[Row]:
        return r.writer.execute(f"SELECT * FROM {tbl} ORDER BY 1, 2").fetchall()

    def picked(self, r: Replica, tbl: str, n: int) -> Key | None:
        rows = self.rows(r, tbl)
        if not rows:
            return None
        row = rows[n % len(rows)]
        return (tbl, row[0]) if tbl == "item" else (tbl, row[0], row[1])

    def record(self, key: Key, row: Row | None) -> None:
        self.history.setdefault(key, []).append(row)

    def expected(self, tbl: str) -> list[Row]:
        return sorted(h[-1] for k, h in self.history.items() if k[0] == tbl and h[-1] is not None)

    # -- foreign writes: plain sqlite3, one transaction each
    @contextmanager
    def write(self, r: Replica) -> Iterator[sqlite3.Connection]:
        self.seq += 1
        self.clock.tick()
        with r.writer:
            yield r.writer

    def do(self, op: tuple[Any, ...]) -> None:
        kind = op[0]
        if kind == "session":
            self.session(*op[1:])
            return
        r = self.replicas[op[1] % len(self.replicas)]
        if kind == "insert":
            for _ in range(op[3]):
                key = self.fresh_key(r, op[2], self.seq + r.owned)
                if key in self._live_keys(r, key[0]):
                    continue
                self._upsert(r, key, "INSERT INTO")
            return
        if kind == "rekey":
            old = self.picked(r, "item", op[2])
            if old is None:
                return
            new = self.fresh_key(r, "item", self.seq + r.owned)
            if new in self._live_keys(r, "item"):
                return
            with self.write(r) as c:
                row = (new[1], f"w{self.seq}", self.seq)
                c.execute("UPDATE item SET id = ?, name = ?, qty = ? WHERE id = ?", (*row, old[1]))
            self.record(old, None)
            self.record(new, row)
            note(f"  replica {r.index}: rekey {old} -> {new}")
            return
        if kind == "reinsert":
            # Re-create a key this replica saw deleted (a new incarnation of a known key).
            gone = sorted(k for k, h in self.history.items() if k[0] == op[2] and k not in self._live_keys(r, op[2]))
            if self.collide:
                gone = [self.fresh_key(r, op[2], op[3])]
                gone = [k for k in gone if k not in self._live_keys(r, op[2])]
            else:
                gone = [k for k in gone if self._owner(k) == r.index]
            if gone:
                self._upsert(r, gone[op[3] % len(gone)], "INSERT INTO")
            return
        key = self.picked(r, op[2], op[3])
        if key is None:
            return
        if kind == "delete":
            with self.write(r) as c:
                c.execute(*_where(f"DELETE FROM {key[0]}", key))
            self.record(key, None)
            note(f"  replica {r.index}: delete {key}")
        elif kind == "update":
            with self.write(r) as c:
                row = self.value(key)
                cols = ("name", "qty") if key[0] == "item" else ("body",)
                nkey = len(key) - 1
                sets = ", ".join(f"{c_} = ?" for c_ in cols)
                c.execute(*_where(f"UPDATE {key[0]} SET {sets}", key, row[nkey:]))
            self.record(key, row)
            note(f"  replica {r.index}: update {key} = {row}")
        elif kind == "replace":
            self._upsert(r, key, "INSERT OR REPLACE INTO")
        elif kind == "upsert":
            self._upsert(r, key, "UPSERT")

    def _upsert(self, r: Replica, key: Key, verb: str) -> None:
        with self.write(r) as c:
            row = self.value(key)
            marks = ", ".join("?" * len(row))
            if verb == "UPSERT":
                pk = "id" if key[0] == "item" else "owner, slug"
                sets = "name = excluded.name, qty = excluded.qty" if key[0] == "item" else "body = excluded.body"
                c.execute(f"INSERT INTO {key[0]} VALUES ({marks}) ON CONFLICT ({pk}) DO UPDATE SET {sets}", row)
            else:
                c.execute(f"{verb} {key[0]} VALUES ({marks})", row)
        self.record(key, row)
        note(f"  replica {r.index}: {verb} {key} = {row}")

    def _live_keys(self, r: Replica, tbl: str) -> set[Key]:
        return {(tbl, row[0]) if tbl == "item" else (tbl, row[0], row[1]) for row in self.rows(r, tbl)}

    @staticmethod
    def _owner(key: Key) -> int:
        return key[1] // 1_000_000 if key[0] == "item" else int(key[1][1:])

    # -- sessions
    def session(self, a: int, b: int, direction: str, batch: int, fault: tuple[Any, ...] | None) -> None:
        n = len(self.replicas)
        a, b = a % n, b % n
        if a == b:
            b = (a + 1) % n
        pa, pb = self._wrap(self.replicas[a], fault), self._wrap(self.replicas[b], fault)
        try:
            result = peersync.sync(pa, pb, SCOPE, direction=direction, batch_size=batch)
            outcome = f"sent {result.sent_a_to_b}/{result.sent_b_to_a} conflicts {result.conflicts}"
            assert result.errors == 0, f"rows failed to apply: {result}"
        except peersync.TransportError as exc:
            assert fault is not None and fault[0] in ("interrupt", "lose"), exc
            outcome = f"interrupted ({exc})"
        note(f"session {a} -> {b} {direction} batch={batch} fault={fault}: {outcome}")

    def _wrap(self, r: Replica, fault: tuple[Any, ...] | None) -> Any:
        """The destination side: records what it receives, then (maybe) fails."""
        peer: Any = r.db
        if fault is not None:
            if fault[0] == "interrupt":
                peer = FaultyPeer(peer, interrupt_after=fault[1])
            elif fault[0] == "lose":
                peer = FaultyPeer(peer, lose_reply_after=fault[1])
            elif fault[0] == "duplicate":
                peer = FaultyPeer(peer, duplicate=True)
            else:
                peer = Meddle(peer, fault[1], lambda: self.do(fault[2]))
        rec = RecordingPeer(peer)
        self.recorders.append(rec)
        return rec

    # -- the end
    def full_round(self, batch: int) -> int:
        sent = 0
        for i in range(len(self.replicas)):
            for j in range(i + 1, len(self.replicas)):
                pi, pj = self._wrap(self.replicas[i], None), self._wrap(self.replicas[j], None)
                res = peersync.sync(pi, pj, SCOPE, batch_size=batch)
                assert res.errors == 0, res
                sent += res.sent_a_to_b + res.sent_b_to_a
        return sent

    def settle(self) -> None:
        """Sync every pair both ways until a round moves nothing, then one more round."""
        for _ in range(6):
            if self.full_round(batch=5) == 0:
                break
        else:
            raise AssertionError("six full rounds still moved changes")
        assert self.full_round(batch=3) == 0, "a round after a quiet round sent changes"

    def check(self, *, exact: bool = True) -> None:
        redundant = [(rec.peer, t, s.batch.first, s.batch.last) for rec in self.recorders for t, s in rec.redundant()]
        assert not redundant, f"changes sent to replicas that already knew them: {redundant[:5]}"
        for tbl in TABLES:
            got = [self.rows(r, tbl) for r in self.replicas]
            for r, rows in zip(self.replicas, got, strict=True):
                assert rows == got[0], f"{tbl}: replica {r.index} differs from replica 0:\n{rows}\n{got[0]}"
            written = {k: h for k, h in self.history.items() if k[0] == tbl}
            for row in got[0]:
                key = (tbl, *row[: 1 if tbl == "item" else 2])
                assert row in written.get(key, []), f"{tbl}: {row} was never written by anyone"
            if exact:
                deleted = [k for k, h in written.items() if h[-1] is None]
                live = {(tbl, *row[: 1 if tbl == "item" else 2]) for row in got[0]}
                back = [k for k in deleted if k in live]
                assert not back, f"{tbl}: deleted rows came back: {back}"
                assert got[0] == self.expected(tbl), (
                    f"{tbl}: rows differ from the model:\n{got[0]}\n{self.expected(tbl)}"
                )
        knowledge = [r.db.describe(SCOPE).knowledge for r in self.replicas]
        for r, k in zip(self.replicas, knowledge, strict=True):
            assert k == knowledge[0], f"replica {r.index} knowledge {k} differs from replica 0's {knowledge[0]}"
        for r in self.replicas:
            errors = [c for c in r.db.conflicts(SCOPE) if c.type is peersync.ConflictType.ERROR]
            assert not errors, f"replica {r.index} logged errors: {errors}"


class Meddle(FaultyPeer):
    """A destination before whose ``at``-th apply (counting from 0) someone writes."""

    def __init__(self, peer: Any, at: int, action: Any) -> None:
        super().__init__(peer)
        self.at, self.action = at, action

    def apply(self, scope: str, data: bytes, handler: Any) -> Any:
        if self.applied == self.at:
            note(f"  between batches, before apply {self.at}:")
            self.action()
        return super().apply(scope, data, handler)


@contextmanager
def world(n: int, *, collide: bool = False, keys: int = 4, skew: dict[int, int] | None = None) -> Iterator[World]:
    clock = Clock()
    clock.skew = dict(skew or {})
    with tempfile.TemporaryDirectory(prefix="peersync-model-", dir=_fast_tmp()) as tmp:
        replicas = []
        try:
            for i in range(n):
                path = Path(tmp) / f"r{i}.db"
                conn = sqlite3.connect(path)
                conn.executescript(SCHEMA)
                conn.close()
                db = peersync.connect(path)
                db.provision(SCOPE, TABLES)
                writer = sqlite3.connect(path)
                writer.create_function("julianday", -1, clock.julianday(i))
                replicas.append(Replica(i, path, db, writer))
            yield World(replicas, clock, collide, keys)
        finally:
            for r in replicas:
                r.writer.close()
                r.db.close()


def _fast_tmp() -> str | None:
    """A RAM-backed folder when there is one: SQLite's fsyncs dominate otherwise."""
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None


def _where(sql: str, key: Key, values: tuple[Any, ...] = ()) -> tuple[str, tuple[Any, ...]]:
    if key[0] == "item":
        return f"{sql} WHERE id = ?", (*values, key[1])
    return f"{sql} WHERE owner = ? AND slug = ?", (*values, key[1], key[2])


def run(w: World, ops: list[tuple[Any, ...]]) -> None:
    for op in ops:
        if op[0] != "session":
            note(repr(op))
        w.do(op)
    w.settle()


# -- the tests ---------------------------------------------------------------------------------------------------------
@MODEL_SETTINGS
@given(n=st.integers(3, 5), ops=operations)
def test_model_converges_to_last_writer(n: int, ops: list[tuple[Any, ...]]) -> None:
    """Disjoint key spaces: after a full round every replica holds exactly the model's rows."""
    with world(n) as w:
        run(w, ops)
        w.check()


@SMALL_SETTINGS
@given(n=st.integers(3, 4), ops=operations)
def test_insert_collisions_converge(n: int, ops: list[tuple[Any, ...]]) -> None:
    """Keys drawn from a tiny shared space, so replicas insert the same key concurrently
    (insert/insert conflicts): replicas still converge to rows that someone wrote."""
    with world(n, collide=True) as w:
        run(w, ops)
        w.check(exact=False)


@SMALL_SETTINGS
@given(
    n=st.integers(3, 4),
    skew=st.dictionaries(st.integers(0, 3), st.integers(-5, 5).map(lambda s: s * 1000 + 250), max_size=4),
    ops=hot_operations,
)
# Found by hand (too rare for the search): C edits the row after seeing A's version, with a
# clock 5 s behind; B gets C's edit through a session whose reply is lost (so B does not
# learn A's version), then A's version, which wins at B by time. B keeps A's row, A and C
# keep C's, and each knows the other's version: they never converge.
@example(
    n=3,
    skew={2: -4750},
    ops=[
        ("insert", 0, "item", 1),
        ("session", 0, 2, "push", 5, None),
        ("update", 2, "item", 0),
        ("session", 2, 1, "push", 5, ("lose", 0)),
        ("session", 0, 1, "push", 5, None),
    ],
)
# The same without any fault: A's and B's concurrent edits, then C's edit made after seeing
# A's (C's clock behind). C resolves B's against its own (B wins by time), B resolves A's
# against B's (A wins): B ends with A's row, C with B's, both knowing every version.
@example(
    n=3,
    skew={1: -2750, 2: -5750},
    ops=[
        ("insert", 0, "item", 1),
        ("session", 0, 1, "push", 5, None),
        ("session", 0, 2, "push", 5, None),
        ("update", 0, "item", 0),
        ("update", 1, "item", 0),
        ("session", 0, 2, "push", 5, None),
        ("update", 2, "item", 0),
        ("session", 1, 2, "push", 5, None),
        ("session", 0, 1, "push", 5, None),
    ],
)
def test_skewed_clocks_still_converge(n: int, skew: dict[int, int], ops: list[tuple[Any, ...]]) -> None:
    """Writers on machines whose clocks disagree by seconds: which write wins is then
    the policy's business, but every replica must still end with the same rows."""
    with world(n, collide=True, keys=2, skew=skew) as w:
        note(f"clock skew per replica (ms): {skew}")
        run(w, ops)
        w.check(exact=False)
