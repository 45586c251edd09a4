"""The Peer contract as the engine relies on it: reads never write, a pass
streams as batches, and ending a session is one idempotent call."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable
from pathlib import Path

import peersync
from peersync import Knowledge
from peersync._engine.model import ConflictType, SessionEnd
from peersync._engine.wire import batch_end

from ..helpers import peers, write

SCHEMA = "CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT, parent INTEGER);"


def _state(path: Path) -> list[tuple[object, ...]]:
    """Every row of every table, peersync's own included."""
    conn = sqlite3.connect(path)
    out: list[tuple[object, ...]] = []
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"):
        out += [(name, *r) for r in conn.execute(f'SELECT * FROM "{name}" ORDER BY 1')]
    conn.close()
    return out


def test_describe_changes_and_batches_never_write(make_db: Callable[..., Path]) -> None:
    a, b = peers(make_db, SCHEMA, ["item"], "ab")
    # A long history of superseded changes: compaction is due.
    write(
        a,
        "WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i < 6000)"
        " INSERT OR REPLACE INTO item SELECT i % 3, 'v' || i, NULL FROM c",
    )
    before = _state(a)
    with peersync.connect(a) as db:
        info = db.describe("s")
        db.schemas("s")
        db.changes("s", Knowledge.empty(), 0, info.tick, max_rows=2, max_bytes=1 << 20)
        list(db.batches("s", Knowledge.empty(), 0, info.tick, max_rows=1, max_bytes=1 << 20))
        db.status("s")
        db.conflicts("s")
    assert _state(a) == before
    with peersync.connect(b) as db:
        db.describe("s")


def test_a_pass_streams_the_batches_changes_returns_one_by_one(make_db: Callable[..., Path]) -> None:
    (a,) = peers(make_db, SCHEMA, ["item"], "a")
    write(a, *(("INSERT INTO item VALUES (?, ?, NULL)", (i, f"n{i}")) for i in range(10)))
    with peersync.connect(a) as db:
        tick = db.describe("s").tick
        streamed = list(db.batches("s", Knowledge.empty(), 0, tick, max_rows=3, max_bytes=1 << 20))
        one_by_one, after = [], 0
        while True:
            data = db.changes("s", Knowledge.empty(), after, tick, max_rows=3, max_bytes=1 << 20)
            one_by_one.append(data)
            after, final = batch_end(data)
            if final:
                break
    assert streamed == one_by_one
    assert len(streamed) == 4
    assert batch_end(streamed[-1]) == (tick, True)


def _failure(scope: str, detail: str = "FOREIGN KEY constraint failed") -> peersync.Conflict:
    return peersync.Conflict(
        scope=scope,
        table="item",
        key=(7,),
        type=ConflictType.ERROR,
        policy="last-writer-wins",
        outcome=peersync.Outcome.FAILED,
        local_version=None,
        remote_version=(b"\x01" * 16, 5),
        local_row=None,
        remote_row={"id": 7, "name": "x", "parent": 99},
        local_time=None,
        remote_time=1,
        detail=detail,
    )


def test_a_retried_finish_changes_nothing_and_logs_nothing_twice(make_db: Callable[..., Path]) -> None:
    a, b = peers(make_db, SCHEMA, ["item"], "ab")
    write(a, "INSERT INTO item VALUES (1, 'one', NULL)")
    with peersync.connect(a) as src, peersync.connect(b) as dst:
        info = src.describe("s")
        end = SessionEnd(uuid.uuid4().hex, info.knowledge, Knowledge.empty(), (_failure("s"),))
        first = dst.finish("s", end)
        state = _state(b)
        assert dst.finish("s", end) == first
        assert _state(b) == state
        assert len(dst.conflicts("s")) == 1
        # A later session brings the row's error entry up to date (still one
        # entry per row); the first session's end, retried after it, must not
        # put the stale error back.
        later = SessionEnd(uuid.uuid4().hex, info.knowledge, Knowledge.empty(), (_failure("s", "later"),))
        dst.finish("s", later)
        dst.finish("s", end)
        assert [c.detail for c in dst.conflicts("s")] == ["later"]
