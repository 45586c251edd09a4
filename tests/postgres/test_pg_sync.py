"""PostgreSQL and SQLite peers in any topology: both directions, loops with
no redundancy, batches, and a randomized mix of writes and sessions that
converges row by row."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

import peersync

from .helpers import ITEM_PG, ITEM_SQLITE, pg_rows, provision, sqlite_db, sqlite_rows, sqlite_write, sync


def _rows(db: str | Path) -> list[tuple[object, ...]]:
    return pg_rows(db) if isinstance(db, str) else sqlite_rows(db)


def _write(db: str | Path, *statements: str) -> None:
    if isinstance(db, str):
        with psycopg.connect(db) as conn:
            for st in statements:
                conn.execute(st)
    else:
        sqlite_write(db, *statements)


def _peers(make_pg: Callable[..., str], tmp_path: Path, kinds: str) -> list[str | Path]:
    out: list[str | Path] = []
    for i, k in enumerate(kinds):
        db: str | Path = make_pg(ITEM_PG) if k == "p" else sqlite_db(tmp_path / f"{i}.db", ITEM_SQLITE)
        provision(db, ["item"])
        out.append(db)
    return out


def test_both_ways_in_batches(make_pg: Callable[..., str], tmp_path: Path) -> None:
    a, b = _peers(make_pg, tmp_path, "sp")
    _write(a, *(f"INSERT INTO item VALUES ({i}, 's{i}', {i}, {i}.25)" for i in range(1, 301)))
    _write(b, *(f"INSERT INTO item VALUES ({i}, 'p{i}', {i}, {i}.5)" for i in range(1001, 1301)))
    r = sync(a, b, batch_size=37)
    assert (r.sent_a_to_b, r.sent_b_to_a, r.conflicts) == (300, 300, 0)
    assert _rows(a) == _rows(b) and len(_rows(a)) == 600
    assert sync(a, b).sent_a_to_b + sync(a, b).sent_b_to_a == 0


@pytest.mark.parametrize("kinds", ["sp", "ps", "pp"])
def test_sessions_with_a_server_read_ahead(
    kinds: str, make_pg: Callable[..., str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server works on one batch while this process reads or applies the
    next (peersync._engine.ahead): same rows, same result, in many batches."""
    from peersync._engine import session

    streams: list[int] = []
    real = session.read_ahead

    def counted(stream: Any) -> Any:
        streams.append(1)
        return real(stream)

    monkeypatch.setattr(session, "read_ahead", counted)
    a, b = _peers(make_pg, tmp_path, kinds)
    _write(a, *(f"INSERT INTO item VALUES ({i}, 's{i}', {i}, {i}.25)" for i in range(1, 301)))
    r = sync(a, b, direction="push", batch_size=29)
    assert streams and r.sent_a_to_b == 300 and _rows(a) == _rows(b)


def test_loop_returns_nothing_to_its_origin(make_pg: Callable[..., str], tmp_path: Path) -> None:
    p1, p2, p3 = _peers(make_pg, tmp_path, "spp")
    _write(p1, *(f"INSERT INTO item VALUES ({i}, 'x', {i}, 0)" for i in range(50)))
    assert sync(p1, p2, direction="push").sent_a_to_b == 50
    assert sync(p2, p3, direction="push").sent_a_to_b == 50
    assert sync(p3, p1, direction="push").sent_a_to_b == 0  # P1's own changes never come back
    _write(p3, "UPDATE item SET qty = -1 WHERE id < 5")
    assert sync(p3, p1, direction="push").sent_a_to_b == 5
    assert sync(p1, p2, direction="push").sent_a_to_b == 5
    assert sync(p2, p3, direction="push").sent_a_to_b == 0
    assert _rows(p1) == _rows(p2) == _rows(p3)


def test_no_change_session_sends_nothing_and_reads_never_write(make_pg: Callable[..., str], tmp_path: Path) -> None:
    a, b = _peers(make_pg, tmp_path, "pp")
    _write(a, "INSERT INTO item VALUES (1, 'x', 1, 1)")
    sync(a, b)
    with psycopg.connect(str(a)) as conn:
        before = conn.execute("SELECT n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_user_tables").fetchall()
        with peersync.connect(str(a)) as pa:
            info = pa.describe("s")
            pa.changes("s", info.knowledge, 0, info.tick, max_rows=10, max_bytes=1 << 20)
            pa.status("s")
        conn.execute("SELECT pg_stat_clear_snapshot()")
        after = conn.execute("SELECT n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_user_tables").fetchall()
    assert before == after
    r = sync(a, b)
    assert r.sent_a_to_b + r.sent_b_to_a == 0


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_writes_and_sessions_converge(make_pg: Callable[..., str], tmp_path: Path, seed: int) -> None:
    rnd = random.Random(seed)
    peers = _peers(make_pg, tmp_path, "spsp")
    for _ in range(12):
        for db in rnd.sample(peers, 2):
            stmts = []
            for _ in range(rnd.randrange(1, 6)):
                i = rnd.randrange(30)
                op = rnd.random()
                if op < 0.5:
                    stmts.append(
                        f"INSERT INTO item VALUES ({i}, 'v{rnd.randrange(100)}', {rnd.randrange(100)}, 0)"
                        " ON CONFLICT (id) DO UPDATE SET name = excluded.name, qty = excluded.qty"
                    )
                elif op < 0.8:
                    stmts.append(f"UPDATE item SET qty = qty + 1 WHERE id = {i}")
                else:
                    stmts.append(f"DELETE FROM item WHERE id = {i}")
            _write(db, *stmts)
        a, b = rnd.sample(peers, 2)
        sync(a, b, batch_size=rnd.choice([3, 10, 100]), direction=rnd.choice(["push", "pull", "both"]))
    for _ in range(2):
        for i in range(len(peers)):
            for j in range(i + 1, len(peers)):
                sync(peers[i], peers[j])
    first = _rows(peers[0])
    for db in peers[1:]:
        assert _rows(db) == first
    moved = 0
    for i in range(len(peers)):
        for j in range(i + 1, len(peers)):
            r = sync(peers[i], peers[j])
            moved += r.sent_a_to_b + r.sent_b_to_a
    assert moved == 0


def test_rows_made_here_travel_in_the_short_form(make_pg: Callable[..., str], tmp_path: Path) -> None:
    """A live row whose last change was made here, creation included, goes as
    ``[tick_offset, time_offset, *values]`` (peersync._engine.wire); a row
    from another replica, an updated row and a tombstone go spelled out."""
    import msgpack

    pg, lite, fresh = _peers(make_pg, tmp_path, "pss")
    _write(pg, *(f"INSERT INTO item VALUES ({i}, 'p{i}', {i}, {i}.5)" for i in range(1, 201)))
    _write(pg, "UPDATE item SET qty = -1 WHERE id = 7", "DELETE FROM item WHERE id = 8")
    _write(lite, *(f"INSERT INTO item VALUES ({i}, 's{i}', {i}, {i}.25)" for i in range(1001, 1101)))
    sync(lite, pg, direction="push")
    with peersync.connect(pg) as a, peersync.connect(fresh) as c:
        data = a.changes("s", c.describe("s").knowledge, 0, a.describe("s").tick, max_rows=10**4, max_bytes=1 << 24)
    ((_, _, rows),) = msgpack.unpackb(data)[10]
    lengths = sorted(len(r) for r in rows)
    assert lengths == [2 + 4] * 198 + [7 + 4] * 102  # 7 updated, 8 deleted, 100 from lite
    r = sync(pg, fresh, direction="push")
    assert r.sent_a_to_b == 300 and _rows(pg) == _rows(fresh)
    assert sync(fresh, pg).sent_a_to_b + sync(fresh, pg).sent_b_to_a == 0
    assert sync(lite, fresh).sent_a_to_b == 0  # fresh knows lite's rows, through pg
    assert _rows(lite) == _rows(fresh)
