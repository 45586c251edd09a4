"""Histories of two clients and a real ``peersync serve`` process syncing
through :class:`~.faultproxy.FaultProxy`, which drops, delays, duplicates and
cuts requests and replies (after the server committed included) and kills the
server with SIGKILL mid-session, restarting it. Each history is seeded (the
seed is printed, ``PEERSYNC_SEED`` replays it); ``PEERSYNC_HISTORIES`` sets
how many run over a served SQLite file (3 by default), and a third as many
over a served PostgreSQL and a served MariaDB database (at least one each).

After the faulty rounds a quiet round (no faults) must converge, exactly:

- insert-only phase: every replica holds every row created, and each SQLite
  replica's tick, which steps once per local change and once per row
  applied, equals the number of rows created: no row arrived twice at any
  replica, none is missing (a PostgreSQL or MariaDB tick may skip numbers,
  so there the tracked rows are counted); no replica logged a conflict (a
  replayed batch applied again would collide with itself); one more sync
  moves nothing.
- edit phase (concurrent updates and deletes on all three): identical rows
  everywhere, and one more sync moves nothing.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from pathlib import Path

import pytest

import peersync

from ..adversarial.servers import Server as DatabaseServer
from ..adversarial.servers import new_server
from ..helpers import write
from ..mysql.conftest import mysql_db
from ..postgres.conftest import make_pg, pg_admin
from .conftest import Server, items, make
from .faultproxy import FaultProxy

__all__ = ["make_pg", "mysql_db", "pg_admin"]  # the server databases' fixtures

HISTORIES = int(os.environ.get("PEERSYNC_HISTORIES", "3"))
DIRECTIONS = ("push", "pull", "both")


def _sync(client: Path, url: str, direction: str, batch_size: int) -> tuple[int, int]:
    """Sync until a session completes; the rows sent each way by the last one."""
    deadline = time.monotonic() + 120
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            with peersync.connect(client) as a, peersync.connect(url, retries=2, backoff=0.01, timeout=20) as b:
                r = peersync.sync(a, b, "s", direction=direction, batch_size=batch_size)  # type: ignore[arg-type]
        except peersync.TransportError as exc:
            last = exc
            time.sleep(0.02)
            continue
        if r.completed:
            return r.sent_a_to_b, r.sent_b_to_a
    raise AssertionError(f"{client} never completed a {direction} session through the proxy: {last}")


def _round(clients: list[Path], url: str, rng: random.Random) -> None:
    """Every client syncs at the same time, each in a random direction."""
    errors: list[BaseException] = []
    plans = [(c, rng.choice(DIRECTIONS), rng.choice((2, 7, 50))) for c in clients]

    def go(client: Path, direction: str, batch: int) -> None:
        try:
            _sync(client, url, direction, batch)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=go, args=plan) for plan in plans]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    if errors:
        raise errors[0]


def _quiet(clients: list[Path], url: str) -> None:
    """Both ways, client after client, then the first again: all converge."""
    for c in [*clients, clients[0]]:
        _sync(c, url, "both", 5000)


def _state(target: Path | str) -> tuple[int, int, int]:
    """(tick, rows tracked, conflicts logged)."""
    with peersync.connect(target) as db:
        st = db.status("s")[0]
        return st.tick, st.tracked_rows, len(db.conflicts("s"))


class Replica:
    """A SQLite file, or (the served database only) a PostgreSQL or MariaDB
    database, with one foreign writer's transaction, rows and state."""

    def __init__(self, path: Path | None = None, server: DatabaseServer | None = None) -> None:
        self.path, self.server = path, server
        self.name = path.name if path is not None else server.kind if server is not None else "?"
        self.target: Path | str = path if path is not None else server.url if server is not None else ""

    def write(self, *statements: str) -> None:
        if self.path is not None:
            write(self.path, *statements)
            return
        assert self.server is not None
        w = self.server.writer()
        try:
            for st in statements:
                w.run(st)
            w.commit()
        finally:
            w.close()

    def rows(self) -> list[tuple[object, ...]]:
        return items(self.path) if self.path is not None else self.server.rows() if self.server is not None else []


def _served(kind: str, tmp: Path, request: pytest.FixtureRequest) -> Replica:
    if kind == "sqlite":
        return Replica(make(tmp / "served.db"))
    return Replica(server=new_server(kind, request))


def _history(tmp: Path, seed: int, kind: str, request: pytest.FixtureRequest) -> FaultProxy:
    rng = random.Random(seed)
    a, b = Replica(make(tmp / "a.db")), Replica(make(tmp / "b.db"))
    served = _served(kind, tmp, request)
    server = Server(served.target).start()  # type: ignore[arg-type]  # a path or a URL

    def restart() -> None:
        server.signal(signal.SIGKILL)
        server.start()

    proxy = FaultProxy(server.port, seed, rate=0.35, kills=3, restart=restart)
    try:
        replicas, clients = [a, b, served], [a.target, b.target]
        created = 0
        # Insert-only phase: each replica creates rows in its own id range.
        for r in range(4):
            for n, db in enumerate(replicas):
                k = rng.randint(0, 25)
                base = (n + 1) * 1_000_000 + r * 1000
                db.write(*(f"INSERT INTO item VALUES ({base + i}, 'r{n} {r} {i}', {i})" for i in range(k)))
                created += k
            _round(clients, proxy.url, rng)
        proxy.enabled = False
        _quiet(clients, proxy.url)
        every = served.rows()
        assert len(every) == created
        for db in replicas:
            assert db.rows() == every, db.name
            tick, tracked, conflicts = _state(db.target)
            assert (tracked, conflicts) == (created, 0), db.name  # no conflict logged
            if db.path is not None:
                # Each row applied once. (A PostgreSQL or MariaDB tick may skip
                # numbers, those a killed or rolled-back transaction took.)
                assert tick == created, db.name
        for c in clients:
            assert _sync(c, proxy.url, "both", 5000) == (0, 0)

        # Edit phase: concurrent updates and deletes of the same rows.
        ids = [row[0] for row in every]
        proxy.enabled = True
        for _ in range(3):
            for n, db in enumerate(replicas):
                picks = rng.sample(ids, min(len(ids), rng.randint(0, 15)))
                db.write(
                    *(
                        f"DELETE FROM item WHERE id = {i}"
                        if rng.random() < 0.2
                        else f"UPDATE item SET qty = qty + {n + 1}, name = 'e{n}' WHERE id = {i}"
                        for i in picks
                    ),
                )
            _round(clients, proxy.url, rng)
        proxy.enabled = False
        _quiet(clients, proxy.url)
        for db in replicas:
            assert db.rows() == served.rows(), db.name
        for c in clients:
            assert _sync(c, proxy.url, "both", 5000) == (0, 0)
        return proxy
    finally:
        proxy.close()
        server.stop()
        if served.server is not None:
            served.server.close()


CASES = [("sqlite", h) for h in range(HISTORIES)]
CASES += [(kind, h) for kind in ("pg", "mysql") for h in range(max(1, HISTORIES // 3))]


@pytest.mark.parametrize(("kind", "history"), CASES)
def test_histories_through_a_faulty_proxy_converge_losing_and_doubling_nothing(
    tmp_path: Path, kind: str, history: int, request: pytest.FixtureRequest
) -> None:
    seed = int(os.environ.get("PEERSYNC_SEED", random.randrange(2**32))) + history
    print(f"fault proxy seed {seed} ({kind} served)")
    proxy = _history(tmp_path, seed, kind, request)
    print(sorted(proxy.faults.items()))
    assert not proxy.missing(), proxy.faults
    assert sum(v for k, v in proxy.faults.items() if not k.startswith("none")) >= 15, proxy.faults
