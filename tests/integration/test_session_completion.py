"""``completed`` tells the truth: a session that stopped following a source
that kept changing says so (what it sent is committed, the rest comes next)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import peersync
from peersync._engine.session import MAX_CHASES
from peersync.testing import _Wrapper

from ..helpers import rows, write

MakeDb = Callable[..., Path]


class BusySource(_Wrapper):
    """A source that a foreign writer changes just before each of its first ``writes`` batches."""

    def __init__(self, peer: peersync.Database, writes: int) -> None:
        super().__init__(peer)
        self.path, self.writes, self.n = peer.path, writes, 0

    def changes(
        self, scope: str, known: peersync.Knowledge, after: int, upto: int, *, max_rows: int, max_bytes: int
    ) -> bytes:
        if self.n < self.writes:
            self.n += 1
            write(self.path, f"INSERT INTO item VALUES ({100 + self.n}, 'late {self.n}', 1, 1.0)")
        return self.peer.changes(scope, known, after, upto, max_rows=max_rows, max_bytes=max_bytes)


def _pair(make_db: MakeDb) -> tuple[peersync.Database, peersync.Database]:
    a, b = make_db("a"), make_db("b")
    write(a, "INSERT INTO item VALUES (1, 'early', 1, 1.0)")
    dbs = peersync.connect(a), peersync.connect(b)
    for d in dbs:
        d.provision("s", ["item", "tag"])
    return dbs


def test_a_session_that_stops_following_a_changing_source_is_not_completed(make_db: MakeDb) -> None:
    a, b = _pair(make_db)
    with a, b:
        r = peersync.sync(BusySource(a, writes=MAX_CHASES + 1), b, "s", direction="push", batch_size=1)
        assert not r.sessions[0].completed
        assert not r.completed and r.to_dict()["completed"] is False
        assert r.error is None and "error" not in r.to_dict()
        # What it sent is committed; the rest comes with the next, quiet session.
        assert 0 < len(rows(b.path, "item")) < len(rows(a.path, "item"))
        r = peersync.sync(a, b, "s", direction="push")
        assert r.completed and r.to_dict()["completed"] is True
    assert rows(a.path, "item") == rows(b.path, "item")


def test_a_session_that_catches_up_with_its_source_is_completed(make_db: MakeDb) -> None:
    a, b = _pair(make_db)
    with a, b:
        r = peersync.sync(BusySource(a, writes=MAX_CHASES), b, "s", direction="push", batch_size=1)
        assert r.completed and r.sessions[0].completed
    assert rows(a.path, "item") == rows(b.path, "item")
