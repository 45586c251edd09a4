"""The world of the randomized multi-replica model test: replicas, writers, sessions, the oracle.

Replicas of one scope ``s`` over three tables, each with a small shared key space and a
small pool of values, so that concurrent writes to one row, identical concurrent values,
delete/delete, re-inserts of deleted keys and UNIQUE collisions between different keys are
all frequent:

- ``task (id INTEGER PRIMARY KEY, status TEXT)``: ids 1 to 3 (a re-key may add 4), three statuses;
- ``note (owner, slug, body)``, a composite text key: three keys, two bodies;
- ``users (id TEXT PRIMARY KEY, email TEXT UNIQUE)``: three users, three emails.

Replicas are joined by a topology (a ring of 5, a star of 5, or every pair of 3 to 5);
sessions run only along its edges, so knowledge reaches a replica through third ones.

Every write is a foreign write (plain ``sqlite3``) whose clock is a shared fake clock
(SQLite's ``julianday('now')`` overridden on the writer's connection) that advances one
second per write. Change times are then unique and ordered like the writes, so under
last-writer-wins each key must end, on every replica, as the last write made to it
anywhere (a value, or its absence): the reference model is exact.

UNIQUE collisions keep the model exact this way: a row that collides on a replica fails
there (an error conflict) and must come again once the row in its way changes. Before the
final settle the history ends with writes that remove every collision the model can see
(two live rows with the same email in the final state, and chains of rows each wanting an
email another row held, which only an atomic swap could apply), so every row can apply in
the end and the last write still wins.

Conflict callbacks that defer or raise are used only during the history; the settle uses
the default policy (last writer wins), so deferred changes must come again.
"""

from __future__ import annotations

import os
import random
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hypothesis
from hypothesis import strategies as st

import peersync
from peersync.testing import FaultyPeer, RecordingPeer

from ._writers import (
    NKEY,
    POOL,
    SCOPE,
    TABLES,
    UNIQUE_ERROR,
    Refused,
    SQLiteWriter,
    Writer,
)

# Keys (without the table name) and values (the non-key columns) per table.
KEYS: dict[str, list[tuple[Any, ...]]] = {
    "task": [(1,), (2,), (3,)],
    "note": [("ann", "a"), ("ann", "b"), ("bob", "a")],
    "users": [("u1",), ("u2",), ("u3",)],
}
VALUES: dict[str, list[tuple[Any, ...]]] = {
    "task": [("open",), ("done",), ("blocked",)],
    "note": [("x",), ("y",)],
    "users": [("a@example.org",), ("b@example.org",), ("c@example.org",)],
}
TABLE_WEIGHT = {"task": 2, "note": 1, "users": 2}  # how often each is written

Key = tuple[Any, ...]  # (table, *primary key)
Row = tuple[Any, ...]  # every column, in table order
DAY_MS = 86_400_000.0
UNIX_EPOCH_JD = 2440587.5


def note(text: str) -> None:
    """A line of the trace hypothesis prints for a failing history (nothing outside one)."""
    if hypothesis.currently_in_test_context():
        hypothesis.note(text)


# -- the number of histories ------------------------------------------------------------------------------------------
def histories(default: int = 200) -> int:
    """Histories per run in total: ``PEERSYNC_HISTORIES`` (or the older ``PEERSYNC_MODEL_EXAMPLES``)."""
    for name in ("PEERSYNC_HISTORIES", "PEERSYNC_MODEL_EXAMPLES"):
        if os.environ.get(name):
            return max(1, int(os.environ[name]))
    return default


# -- operations (plain tuples: hypothesis prints them, and a printed list replays) ------------------------------------
replica = st.integers(0, 4)  # taken modulo the number of replicas
which = st.integers(0, 2)  # a key or value index, modulo the pool's size
VERBS = ("insert", "update", "upsert", "replace")
POLICIES = ("lww", "lww", "lww", "defer", "raise")


def operations(tables: tuple[str, ...] = tuple(TABLES), max_size: int = 40) -> st.SearchStrategy[list[tuple[Any, ...]]]:
    """Histories: writes on random replicas and sessions along random edges."""
    table = st.sampled_from([t for t in tables for _ in range(TABLE_WEIGHT[t])])
    one_set = st.tuples(st.just("set"), replica, table, which, which, st.sampled_from(VERBS))
    writes = [
        # Write (key, value) on a replica: INSERT when the row is absent there (a re-insert if it
        # was deleted), else UPDATE; or an upsert, or INSERT OR REPLACE (which may evict a user).
        one_set,
        one_set,
        st.tuples(st.just("delete"), replica, table, which),
        # Several replicas write one row before any of them syncs: concurrent updates, identical
        # concurrent values (the pools are small), delete/delete (a value of None deletes).
        st.tuples(
            st.just("race"), table, which, st.lists(st.tuples(replica, st.none() | which), min_size=2, max_size=4)
        ),
    ]
    if "task" in tables:
        writes.append(st.tuples(st.just("rekey"), replica, which, st.integers(0, 3)))  # task id -> 1..4
    write = st.one_of(*writes)
    fault = st.one_of(
        *[st.none()] * 4,
        st.tuples(st.just("interrupt"), st.integers(0, 3)),
        st.tuples(st.just("lose"), st.integers(0, 2)),
        st.just(("duplicate",)),
        # a foreign write before the destination's n-th apply (between batches)
        st.tuples(st.just("meddle"), st.integers(0, 2), write),
    )
    session = st.tuples(
        st.just("session"),
        st.integers(0, 9),  # an edge of the topology, modulo their number
        st.sampled_from(["push", "pull", "both"]),
        st.integers(1, 4),  # batch size
        fault,
        st.sampled_from(POLICIES),
    )
    # A history is a list of steps, each a few operations; hypothesis then draws histories of
    # about 20 operations on average (a flat list averages 6), and still shrinks them to a few.
    # Every edge syncs once, in an order drawn from the seed, under one policy: knowledge
    # spreads through third replicas while rows still collide or conflicts are deferred.
    full_round = st.tuples(st.just("round"), st.integers(0, 999), st.sampled_from(POLICIES))
    steps = st.lists(st.one_of(write, session, full_round), min_size=1, max_size=5)
    return st.lists(steps, min_size=1, max_size=max_size // 4).map(lambda s: [op for step in s for op in step])


topologies = st.one_of(
    st.just(("ring", 5)),
    st.just(("star", 5)),
    st.tuples(st.just("pairs"), st.integers(3, 5)),
)


def edges(topology: tuple[str, int]) -> list[tuple[int, int]]:
    kind, n = topology
    if kind == "ring":
        return [(i, (i + 1) % n) for i in range(n)]
    if kind == "star":
        return [(0, i) for i in range(1, n)]  # replica 0 is the hub
    return [(i, j) for i in range(n) for j in range(i + 1, n)]


# -- policies used during the history ---------------------------------------------------------------------------------
def _defer(c: peersync.Conflict) -> peersync.Outcome:
    return peersync.Outcome.DEFER


def _raise(c: peersync.Conflict) -> peersync.Outcome:
    raise RuntimeError(f"this callback fails on purpose ({c.table} {c.key})")


POLICY: dict[str, peersync.ConflictHandler] = {
    "lww": peersync.Policy.LAST_WRITER_WINS,
    "defer": _defer,
    "raise": _raise,
}


# -- the world ------------------------------------------------------------------------------------------------------
class Clock:
    """A fake wall clock shared by all foreign writers, one second per write.

    ``skew`` shifts one replica's writers (clocks of different machines).
    """

    def __init__(self) -> None:
        self.ms = (int(time.time()) + 86_400) * 1000 + 500  # after every real-time write of the run; mid-second
        self.skew: dict[int, int] = {}

    def tick(self) -> None:
        self.ms += 1000

    def now(self, replica: int) -> int:
        """The time, in ms, of a write on ``replica`` now."""
        return self.ms + self.skew.get(replica, 0)

    def julianday(self, replica: int) -> Callable[..., float | None]:
        def jd(arg: str, *_: object) -> float | None:
            if arg != "now":
                return None
            # + 0.5 ms: SQLite truncates the computed milliseconds, and the double is only that exact.
            return (self.ms + self.skew.get(replica, 0) + 0.5) / DAY_MS + UNIX_EPOCH_JD

        return jd


@dataclass
class Replica:
    index: int
    db: peersync.Database
    writer: Writer


@dataclass
class World:
    replicas: list[Replica]
    clock: Clock
    links: list[tuple[int, int]]
    history: dict[Key, list[Row | None]] = field(default_factory=dict)  # every write per key, in order
    last: dict[Key, tuple[int, int]] = field(default_factory=dict)  # a key's last write: (seq, replica)
    recorders: list[RecordingPeer] = field(default_factory=list)
    seq: int = 0

    # -- reading a replica
    def rows(self, r: Replica, tbl: str) -> list[Row]:
        return r.writer.rows(tbl)

    def local(self, r: Replica, key: Key) -> Row | None:
        return r.writer.local(key[0], key[1:])

    def record(self, key: Key, row: Row | None, by: int) -> None:
        self.history.setdefault(key, []).append(row)
        self.last[key] = (self.seq, by)

    def final(self, tbl: str) -> dict[Key, Row]:
        """The model: per key, its last write, for keys whose last write is a row."""
        return {k: h[-1] for k, h in self.history.items() if k[0] == tbl and h[-1] is not None}

    # -- foreign writes: the plain driver, one transaction each
    def write(self, r: Replica, verb: str, tbl: str, *args: Any) -> None:
        """Raises :class:`Refused` when the write breaks the UNIQUE email (nothing changed)."""
        self.seq += 1
        self.clock.tick()
        r.writer.write(self.clock.now(r.index), verb, tbl, *args)

    def do(self, op: tuple[Any, ...]) -> None:
        kind = op[0]
        if kind == "session":
            self.session(*op[1:])
            return
        if kind == "round":
            sent, errors = self.full_round(random.Random(op[1]), op[2])
            note(f"round (seed {op[1]}, policy {op[2]}): sent {sent}, errors {errors}")
            return
        if kind == "race":
            _, tbl, k, writers = op
            key = (tbl, *KEYS[tbl][k % len(KEYS[tbl])])
            for i, v in writers:
                r = self.replicas[i % len(self.replicas)]
                if v is None:
                    self.delete(r, key)
                else:
                    self.set(r, key, VALUES[tbl][v % len(VALUES[tbl])], "update")
            return
        r = self.replicas[op[1] % len(self.replicas)]
        if kind == "set":
            _, _, tbl, k, v, verb = op
            key = (tbl, *KEYS[tbl][k % len(KEYS[tbl])])
            self.set(r, key, VALUES[tbl][v % len(VALUES[tbl])], verb)
        elif kind == "delete":
            _, _, tbl, k = op
            self.delete(r, (tbl, *KEYS[tbl][k % len(KEYS[tbl])]))
        elif kind == "rekey":
            _, _, k, to = op
            old, new = ("task", *KEYS["task"][k % 3]), ("task", to + 1)
            row = self.local(r, old)
            if row is None or old == new or self.local(r, new) is not None:
                return
            self.write(r, "rekey", "task", old[1], new[1])
            self.record(old, None, r.index)
            self.record(new, (new[1], *row[1:]), r.index)
            note(f"  replica {r.index}: rekey {old} -> {new}")

    def delete(self, r: Replica, key: Key) -> None:
        if self.local(r, key) is None:
            return
        self.write(r, "delete", key[0], key[1:])
        self.record(key, None, r.index)
        note(f"  replica {r.index}: delete {key}")

    def set(self, r: Replica, key: Key, value: tuple[Any, ...], verb: str) -> None:
        tbl = key[0]
        row = (*key[1:], *value)
        before = self.local(r, key)
        if before == row:
            return  # an UPDATE that changes nothing is no change
        evicted: list[Key] = []
        if verb == "replace" and tbl == "users":
            evicted = [("users", u) for u, e in self.rows(r, "users") if e == row[1] and u != row[0]]
        try:
            if verb in ("replace", "upsert"):
                self.write(r, verb, tbl, row)
            elif before is None:
                self.write(r, "insert", tbl, row)
            else:
                self.write(r, "update", tbl, key[1:], value)
        except Refused:  # the email is taken here: the write fails, nothing changes
            note(f"  replica {r.index}: {verb} {row} refused (UNIQUE)")
            return
        for gone in evicted:
            self.record(gone, None, r.index)
        self.record(key, row, r.index)
        note(f"  replica {r.index}: {verb} {row}" + (f", evicting {evicted}" if evicted else ""))

    # -- sessions
    def session(
        self, edge: int, direction: str, batch: int, fault: tuple[Any, ...] | None, policy: str = "lww"
    ) -> None:
        a, b = self.links[edge % len(self.links)]
        pa, pb = self._wrap(self.replicas[a], fault), self._wrap(self.replicas[b], fault)
        try:
            result = peersync.sync(pa, pb, SCOPE, direction=direction, batch_size=batch, policy=POLICY[policy])
            outcome = (
                f"sent {result.sent_a_to_b}/{result.sent_b_to_a} conflicts {result.conflicts} errors {result.errors}"
            )
        except peersync.TransportError as exc:
            assert fault is not None and fault[0] in ("interrupt", "lose"), exc
            outcome = f"interrupted ({exc})"
        note(f"session {a} -> {b} {direction} batch={batch} fault={fault} policy={policy}: {outcome}")

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
    def remove_collisions(self, choose: random.Random) -> None:
        """Writes that leave no UNIQUE collision in the model's final state (a new,
        unused email for every user in the way), so every row can apply everywhere.

        Two live users with one email: all but one (drawn by ``choose``) get a new
        email. A chain of users each wanting an email that the next one held in
        some version (u1 wants u2's old email, u2 wants u1's old one) could only
        apply as one atomic swap: one user of each such cycle gets a new email.
        Each new email is written where that user's last write was made."""
        fixes = 0

        def fix(key: Key) -> None:
            nonlocal fixes
            fixes += 1
            email = f"fix{self.seq + 1}@example.org"
            r = self.replicas[self.last[key][1]]
            self.set(r, key, (email,), "upsert")

        final = self.final("users")
        by_email: dict[str, list[Key]] = {}
        for k in sorted(final):
            by_email.setdefault(final[k][1], []).append(k)
        for keys in by_email.values():
            if len(keys) > 1:
                keys.pop(choose.randrange(len(keys)))
                for k in keys:
                    fix(k)
        while True:
            final = self.final("users")
            held = {k: {row[1] for row in h if row is not None} for k, h in self.history.items() if k[0] == "users"}
            wants = {k: [j for j in held if j != k and final[k][1] in held[j] and j in final] for k in final}
            cycle = _cycle(wants)
            if cycle is None:
                break
            fix(choose.choice(cycle))
        if fixes:
            note(f"  ({fixes} writes above remove UNIQUE collisions before the settle)")

    def full_round(self, order: random.Random, policy: str = "lww") -> tuple[int, int]:
        """Every edge syncs both ways, in an order drawn from ``order``."""
        sent = errors = 0
        links = list(self.links)
        order.shuffle(links)
        for i, j in links:
            if order.random() < 0.5:
                i, j = j, i
            pi, pj = self._wrap(self.replicas[i], None), self._wrap(self.replicas[j], None)
            res = peersync.sync(pi, pj, SCOPE, batch_size=order.randint(2, 8), policy=POLICY[policy])
            sent += res.sent_a_to_b + res.sent_b_to_a
            errors += res.errors
        return sent, errors

    def settle(self, seed: int = 0) -> None:
        """Full rounds until one moves nothing; the edges' order varies from round to round."""
        order = random.Random(seed)
        for _ in range(12):
            sent, errors = self.full_round(order)
            if sent == 0:
                assert errors == 0, f"a quiet round still logged {errors} errors"
                return
        raise AssertionError("twelve full rounds still moved changes")

    def check(self, *, exact: bool = True) -> None:
        redundant = [(rec.peer, t, s.batch.first, s.batch.last) for rec in self.recorders for t, s in rec.redundant()]
        assert not redundant, f"changes sent to replicas that already knew them: {redundant[:5]}"
        for tbl in TABLES:
            got = [self.rows(r, tbl) for r in self.replicas]
            for r, rows in zip(self.replicas, got, strict=True):
                assert rows == got[0], f"{tbl}: replica {r.index} differs from replica 0:\n{rows}\n{got[0]}"
            written = {k: h for k, h in self.history.items() if k[0] == tbl}
            for row in got[0]:
                key = (tbl, *row[: NKEY[tbl]])
                assert row in written.get(key, []), f"{tbl}: {row} was never written by anyone"
            if exact:
                live = {(tbl, *row[: NKEY[tbl]]) for row in got[0]}
                back = [k for k, h in written.items() if h[-1] is None and k in live]
                assert not back, f"{tbl}: deleted rows came back: {back}"
                expected = sorted(self.final(tbl).values())
                assert got[0] == expected, f"{tbl}: rows differ from the last writes:\n{got[0]}\n{expected}"
        for r in self.replicas:
            errors = [c for c in r.db.conflicts(SCOPE) if c.type is peersync.ConflictType.ERROR]
            odd = [c for c in errors if c.table != "users" or not UNIQUE_ERROR.search(c.detail)]
            assert not odd, f"replica {r.index} logged errors other than UNIQUE collisions: {odd}"


def _cycle(wants: dict[Key, list[Key]]) -> list[Key] | None:
    """A cycle in the graph ``wants`` (key -> keys), or None."""
    state: dict[Key, int] = {}
    path: list[Key] = []

    def visit(k: Key) -> list[Key] | None:
        state[k] = 1
        path.append(k)
        for j in wants.get(k, []):
            if state.get(j) == 1:
                return path[path.index(j) :]
            if j not in state:
                found = visit(j)
                if found:
                    return found
        state[k] = 2
        path.pop()
        return None

    for k in sorted(wants):
        if k not in state:
            found = visit(k)
            if found:
                return found
    return None


class Meddle(FaultyPeer):
    """A destination before whose ``at``-th apply (counting from 0) someone writes."""

    def __init__(self, peer: Any, at: int, action: Callable[[], None]) -> None:
        super().__init__(peer)
        self.at, self.action = at, action

    def apply(self, scope: str, data: bytes, handler: Any) -> Any:
        if self.applied == self.at:
            note(f"  between batches, before apply {self.at}:")
            self.action()
        return super().apply(scope, data, handler)


@contextmanager
def world(
    topology: tuple[str, int], *, skew: dict[int, int] | None = None, kinds: list[str] | None = None
) -> Iterator[World]:
    """Replicas joined by ``topology``; ``kinds`` names each one's database
    (``sqlite``, ``postgres``, ``mysql``; all SQLite files by default)."""
    clock = Clock()
    clock.skew = dict(skew or {})
    n = topology[1]
    with tempfile.TemporaryDirectory(prefix="peersync-model-", dir=_fast_tmp()) as tmp:
        replicas = []
        try:
            for i in range(n):
                kind = kinds[i] if kinds else "sqlite"
                writer = SQLiteWriter(Path(tmp), i, clock.julianday(i)) if kind == "sqlite" else POOL.take(kind)
                replicas.append(Replica(i, writer.db, writer))
            yield World(replicas, clock, edges(topology))
        finally:
            for r in replicas:
                if r.writer.kind == "sqlite":
                    r.writer.close()
                else:
                    POOL.give(r.writer)


def _fast_tmp() -> str | None:
    """A RAM-backed folder when there is one: SQLite's fsyncs dominate otherwise."""
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None


def run(w: World, ops: list[tuple[Any, ...]], *, settle: int = 0, remove_collisions: bool = True) -> None:
    """Play a history, one full round, writes that remove what would keep rows from
    applying, and settle."""
    for op in ops:
        if op[0] != "session":
            note(repr(op))
        w.do(op)
    if remove_collisions:
        # One round first, while rows still collide: knowledge of the refused rows spreads
        # through third replicas before the writes that let them apply.
        choose = random.Random(settle)
        sent, errors = w.full_round(choose)
        note(f"round before the collisions are removed: sent {sent}, errors {errors}")
        w.remove_collisions(choose)
    w.settle(settle)
