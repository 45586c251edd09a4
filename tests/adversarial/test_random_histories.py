"""Randomized concurrent histories between a server database and two SQLite
replicas, with exact checks.

Each history: three foreign writer connections on the server hold
transactions open across many steps (writes, savepoints rolled back, commits,
rollbacks, a killed connection now and then), autocommit writers and SQLite
writers change rows too, and sessions between every pair run in background
threads, up to two at once (two peers pushing into the server together
included), while the writers carry on. Then every writer ends, and quiet
rounds of sessions run until one sends nothing. The oracle:

- all three databases hold identical rows (nothing committed was skipped
  for good, nothing lost on the way);
- no change reached a destination that knew it, and no version reached the
  same destination twice (arrivals in sessions that overlapped another
  session into the same destination are exempt: neither could know of the
  other's delivery);
- a session fails only with a retryable storage error (a lock wait or an
  apply that kept meeting concurrent writes), and nothing else.

How many histories: ``PEERSYNC_HISTORIES`` in total over both servers
(default 2); ``PEERSYNC_SEED`` replays one seed (threads make a replay
close, not exact). A failure names its seed.
"""

from __future__ import annotations

import os
import random
import sqlite3
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import pytest

import peersync
from peersync._engine.wire import decode_batch
from peersync.testing import Sent

from .servers import SCOPE, Server, Writer, new_server, sqlite_replica, sqlite_rows

KEYS = 12
SLOTS = 3  # slot i writes the keys k with k % 4 == i; autocommit writers those with k % 4 == 3


def _histories() -> int:
    return max(2, int(os.environ.get("PEERSYNC_HISTORIES", "2"))) // 2


class _Peer:
    """A destination that records a batch only once it is applied, with the
    destination's knowledge just before."""

    def __init__(self, peer: Any) -> None:
        self.peer = peer
        self.url = peer.url
        self.received: list[Sent] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.peer, name)

    def apply(self, scope: str, data: bytes, handler: Any) -> Any:
        before = self.peer.describe(scope).knowledge
        report = self.peer.apply(scope, data, handler)
        self.received.append(Sent(before, decode_batch(data, self.peer.schemas(scope)), len(data)))
        return report


@dataclass
class _Session:
    src: str
    dst: str
    start: float
    end: float = 0.0
    arrivals: list[tuple[bytes, int, bool]] = field(default_factory=list)  # version, known before
    error: BaseException | None = None


@dataclass
class _History:
    seed: int
    server: Server
    replicas: list[str]
    rnd: random.Random
    sessions: list[_Session] = field(default_factory=list)
    running: list[tuple[threading.Thread, _Session]] = field(default_factory=list)
    slots: list[Writer | None] = field(default_factory=list)
    auto: Writer | None = None
    steps: int = 0

    @property
    def names(self) -> list[str]:
        return [self.server.url, *self.replicas]

    # -- sessions -------------------------------------------------------------------
    def run_session(self, s: _Session) -> None:
        src = peersync.connect(s.src)
        dst = _Peer(peersync.connect(s.dst))
        try:
            peersync.sync(src, dst, SCOPE, direction="push", batch_size=self.rnd.choice([2, 5, 100]))  # type: ignore[arg-type]
        except peersync.StorageError as exc:  # retryable: a lock wait, an apply out of retries
            s.error = exc
        except BaseException as exc:
            s.error = exc
            raise
        finally:
            s.end = time.monotonic()
            for sent in dst.received:
                for changes in sent.batch.changes.values():
                    for ch in changes:
                        s.arrivals.append((ch[2][0], ch[2][1], ch[2] in sent.known_before))
            src.close()
            dst.close()

    def start_session(self) -> None:
        self.running = [(t, s) for t, s in self.running if t.is_alive()]
        if len(self.running) >= 2:
            return
        busy = {u for _, s in self.running for u in (s.src, s.dst) if u in self.replicas}
        pairs = [(a, b) for a in self.names for b in self.names if a != b and a not in busy and b not in busy]
        if not pairs:
            return
        src, dst = self.rnd.choice(pairs)
        s = _Session(src, dst, time.monotonic())
        self.sessions.append(s)
        t = threading.Thread(target=self.run_session, args=(s,), daemon=True)
        t.start()
        self.running.append((t, s))

    def join(self) -> None:
        for t, _ in self.running:
            t.join(120)
            assert not t.is_alive(), f"seed {self.seed}: a session hangs"
        self.running = []

    # -- writers ----------------------------------------------------------------------
    def upsert(self, key: int, name: str) -> str:
        if self.server.kind == "pg":
            return (
                f"INSERT INTO item VALUES ({key}, '{name}', 0) ON CONFLICT (id) DO UPDATE"
                " SET name = excluded.name, qty = item.qty + 1"
            )
        return (
            f"INSERT INTO item VALUES ({key}, '{name}', 0) ON DUPLICATE KEY UPDATE name = VALUES(name), qty = qty + 1"
        )

    def slot_step(self, i: int) -> None:
        rnd, w = self.rnd, self.slots[i]
        if w is None:
            iso = rnd.choice([None, "READ COMMITTED", "REPEATABLE READ", "SERIALIZABLE"])
            w = self.slots[i] = self.server.writer(isolation=iso, lock_wait=0.3)
        key = rnd.randrange(KEYS // 4) * 4 + i
        op = rnd.choices(
            ["write", "delete", "savepoint", "undo", "commit", "rollback", "kill"], [6, 2, 1, 1, 3, 1, 0.3]
        )[0]
        try:
            if op == "write":
                w.run(self.upsert(key, f"s{i}-{self.steps}"))
            elif op == "delete":
                w.run(f"DELETE FROM item WHERE id = {key}")
            elif op == "savepoint":
                w.run("SAVEPOINT sp")
                w.run(self.upsert(key, f"s{i}-{self.steps}-sp"))
            elif op == "undo":
                w.run("SAVEPOINT sp")
                w.run(self.upsert(key, f"s{i}-{self.steps}-undone"))
                w.run("ROLLBACK TO SAVEPOINT sp")
            elif op == "commit":
                w.commit()
            elif op == "rollback":
                w.rollback()
            else:
                self.server.kill(w)
                self.slots[i] = None
        except Exception as exc:  # a lock wait or serialization failure of the writer: its transaction ends
            if not _writer_conflict(exc):
                raise
            w.rollback()

    def auto_step(self) -> None:
        """One write of its own transaction (an autocommit client's), which
        may wait for a row an apply holds."""
        if self.auto is None:
            self.auto = self.server.writer(lock_wait=0.3)
        key = self.rnd.randrange(KEYS // 4) * 4 + 3
        try:
            self.auto.run(self.upsert(key, f"auto-{self.steps}"))
            self.auto.commit()
        except Exception as exc:
            if not _writer_conflict(exc):
                raise
            self.auto.rollback()

    def sqlite_step(self) -> None:
        busy = {u for t, s in self.running if t.is_alive() for u in (s.src, s.dst)}
        free = [r for r in self.replicas if r not in busy]
        if not free:
            return
        path, key = self.rnd.choice(free), self.rnd.randrange(KEYS)
        conn = sqlite3.connect(path, timeout=30)
        with conn:
            if self.rnd.random() < 0.25:
                conn.execute("DELETE FROM item WHERE id = ?", (key,))
            else:
                conn.execute(
                    "INSERT INTO item VALUES (?, ?, 0) ON CONFLICT (id) DO UPDATE SET name = excluded.name,"
                    " qty = qty + 1",
                    (key, f"{path[-4:-3]}-{self.steps}"),
                )
        conn.close()

    def step(self) -> None:
        self.steps += 1
        r = self.rnd.random()
        if r < 0.45:
            self.slot_step(self.rnd.randrange(SLOTS))
        elif r < 0.6:
            self.auto_step()
        elif r < 0.75:
            self.sqlite_step()
        else:
            self.start_session()
        time.sleep(self.rnd.choice([0, 0, 0.005, 0.02]))

    def end_writers(self) -> None:
        for i, w in enumerate(self.slots):
            if w is not None:
                try:
                    (w.commit if self.rnd.random() < 0.8 else w.rollback)()
                except Exception as exc:  # a serialization failure at commit: the transaction is gone
                    if not _writer_conflict(exc):
                        raise
                    w.rollback()
                w.close()
                self.slots[i] = None
        if self.auto is not None:
            self.auto.close()
            self.auto = None

    # -- the oracle ---------------------------------------------------------------------
    def quiet_rounds(self) -> None:
        for _ in range(6):
            moved = 0
            for src in self.names:
                for dst in self.names:
                    if src != dst:
                        s = _Session(src, dst, time.monotonic())
                        self.sessions.append(s)
                        self.run_session(s)
                        assert s.error is None, f"seed {self.seed}: quiet session {src} -> {dst}: {s.error!r}"
                        moved += len(s.arrivals)
            if moved == 0:
                return
        raise AssertionError(f"seed {self.seed}: quiet rounds keep sending")

    def check(self) -> None:
        srv = self.server.rows()
        for r in self.replicas:
            assert sqlite_rows(r) == srv, (
                f"seed {self.seed}: {r} differs from the server: {sqlite_rows(r)} != {srv}"
                f" (sessions: {[(s.src[-12:], s.dst[-12:], len(s.arrivals), s.error) for s in self.sessions]})"
            )
        by_dst: dict[str, list[_Session]] = defaultdict(list)
        for s in self.sessions:
            by_dst[s.dst].append(s)
        for dst, sessions in by_dst.items():
            first: dict[tuple[bytes, int], _Session] = {}
            for s in sessions:
                alone = not any(o is not s and o.start < s.end and s.start < o.end for o in sessions)
                for rep, tick, known in s.arrivals:
                    assert not (known and alone), f"seed {self.seed}: {dst} got {rep.hex()[:8]}@{tick} it knew"
                    prev = first.get((rep, tick))
                    if prev is not None:
                        overlap = prev.start < s.end and s.start < prev.end
                        assert overlap, f"seed {self.seed}: {dst} got {rep.hex()[:8]}@{tick} twice"
                    first[(rep, tick)] = s
        bad = [s.error for s in self.sessions if s.error is not None and not isinstance(s.error, peersync.StorageError)]
        assert not bad, f"seed {self.seed}: {bad[:3]}"


def _writer_conflict(exc: Exception) -> bool:
    args = getattr(exc, "args", ())
    if args and isinstance(args[0], int):  # PyMySQL: lock wait timeout, deadlock
        return args[0] in (1205, 1213)
    # psycopg: lock timeout, deadlock, serialization failure
    return getattr(exc, "sqlstate", None) in ("55P03", "40P01", "40001")


@pytest.mark.parametrize("kind", ["pg", "mysql"])
def test_random_concurrent_histories_converge_exactly_once(kind: str, request: Any, tmp_path: Any) -> None:
    seeds = (
        [int(os.environ["PEERSYNC_SEED"])]
        if os.environ.get("PEERSYNC_SEED")
        else [random.randrange(2**32) for _ in range(_histories())]
    )
    failed_sessions = sessions = overlapping = delivered = 0
    for n, seed in enumerate(seeds):
        server = new_server(kind, request)
        replicas = [sqlite_replica(tmp_path / f"h{n}-{name}.db") for name in ("a", "b")]
        h = _History(seed, server, replicas, random.Random(seed), slots=[None] * SLOTS)
        try:
            for _ in range(60):
                h.step()
            h.end_writers()
            h.join()
            h.quiet_rounds()
            h.check()
            failed_sessions += sum(s.error is not None for s in h.sessions)
            sessions += len(h.sessions)
            overlapping += sum(
                any(o is not s and o.start < s.end and s.start < o.end for o in h.sessions) for s in h.sessions
            )
            delivered += sum(len(s.arrivals) for s in h.sessions)
        except BaseException as exc:
            exc.add_note(f"history {n} of {len(seeds)}, seed {seed} (replay: PEERSYNC_SEED={seed})")
            raise
        finally:
            h.end_writers()
            server.close()
    print(
        f"{kind}: {len(seeds)} histories, {sessions} sessions ({overlapping} overlapping another,"
        f" {failed_sessions} ended by a retryable storage error), {delivered} changes delivered"
    )
