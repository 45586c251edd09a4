"""The pooled server databases (pool.py) are as good as fresh ones: a
database used by a test (rows, tombstones, conflicts, other replicas,
knowledge, finished and interrupted sessions) and then reset is, table by
table, counter by counter and object by object, what a fresh provisioning
makes, apart from its new replica id; and a database whose shape a test
changed is dropped, never handed out again."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

import peersync
from peersync.testing import FaultyPeer

from .kinds import KINDS, SCOPE, Kind
from .pool import Pool, Snapshot, scope_rows

SERVERS = ["mysql", "postgres"]
RID = b"\0" * 16


def _pool(kind: str) -> Pool:
    server = KINDS[kind].server()  # type: ignore[attr-defined]
    return Pool(server, "ps_pooltest_" if kind == "mysql" else "peersync_pooltest_")


def _normal(snap: Snapshot) -> dict[str, Any]:
    """Everything in a snapshot, the replica id and creation time made equal."""
    return {
        "rows": {t: sorted(scope_rows(snap, t, RID, 0), key=repr) for t in snap.rows},
        "columns": snap.columns,
        "counters": snap.counters,
        "shape": snap.shape,
    }


def _use(kind: Kind, urls: list[str]) -> None:
    """A test's worth of history between two peers: every metadata table gets rows."""
    a, b = (peersync.connect(u) for u in urls)
    try:
        t = iter(range(2_000_000_000_000, 2_000_000_100_000, 1000))
        for i in range(1, 5):
            kind.insert(a, "item", {"id": i, "name": "a", "qty": i}, next(t))
        kind.insert(b, "note", {"owner": "b", "slug": "x", "body": "hi"}, next(t))
        peersync.sync(a, b, SCOPE)
        kind.update(a, "item", (1,), {"qty": 10}, next(t))
        kind.update(b, "item", (1,), {"qty": 11}, next(t))
        kind.delete(a, "item", (2,), next(t))
        assert peersync.sync(a, b, SCOPE).conflicts == 1
        for i in range(10, 14):
            kind.insert(a, "item", {"id": i, "name": "late", "qty": i}, next(t))
        with pytest.raises(peersync.TransportError):
            peersync.run_session(a, FaultyPeer(b, interrupt_after=2), SCOPE, batch_size=1)
        assert b.conflicts(SCOPE)
    finally:
        a.close()
        b.close()
        kind.cleanup()


@pytest.mark.parametrize("name", SERVERS)
def test_a_reset_database_is_indistinguishable_from_a_fresh_one(name: str, tmp_path: Path) -> None:
    pool = _pool(name)
    server = pool.server
    try:
        used = [pool.acquire(), pool.acquire()]
        before = [server.snapshot(n) for n in used]
        rids = {bytes(peersync.connect(server.url(n)).describe(SCOPE).replica_id) for n in used}
        _use(KINDS[name].fresh(tmp_path), [server.url(n) for n in used])
        dirty = server.snapshot(used[1])
        changed = {t for t in dirty.rows if dirty.rows[t] != before[1].rows[t]}
        assert len(changed) >= 8, f"the history wrote to user, tracking and metadata tables: {sorted(changed)}"
        assert dirty.counters != before[1].counters or (name == "postgres" and dirty.counters)
        for n in used:
            pool.release(n)

        # A fresh database on the same server, outside the pool (dropped by close()).
        fresh_name = pool.prefix + "fresh" + uuid.uuid4().hex[:8]
        pool.snapshots[fresh_name] = Snapshot({}, {}, {}, [])
        server.create(fresh_name)
        want = _normal(server.snapshot(fresh_name))

        for _ in used:
            again = pool.acquire()
            assert again in used and pool.reused >= 1 and pool.made == 2
            got = server.snapshot(again)
            assert _normal(got) == want
            with peersync.connect(server.url(again)) as db:
                info = db.describe(SCOPE)
                rid = bytes(info.replica_id)
                assert rid not in rids, "a reset database gets a new replica id"
                rids.add(rid)
                assert info.tick == 0 and db.conflicts(SCOPE) == []
                assert info.knowledge.replicas() in ([], [rid])
    finally:
        pool.close()


@pytest.mark.parametrize("name", SERVERS)
def test_a_database_whose_shape_changed_is_dropped_not_reused(name: str) -> None:
    pool = _pool(name)
    server = pool.server
    try:
        first = pool.acquire()
        with peersync.connect(server.url(first)) as db:
            db.deprovision(SCOPE)
        pool.release(first)
        second = pool.acquire()
        assert second != first and pool.made == 2 and pool.reused == 0
        assert first not in pool.snapshots
        with pytest.raises(peersync.SyncError):
            peersync.connect(server.url(first))
    finally:
        pool.close()
