"""The triggers' guard during an apply (src/peersync/_adapters/sqlite/schema.py, module
docstring): where nothing can cause side effects the apply sets the floor to ``SKIP_ALL`` and
the triggers skip every row without probing the tracking table; databases provisioned with
the earlier guard (which always probes) stay valid and sync as before.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import peersync
from peersync._adapters.sqlite.schema import SKIP_ALL

from ..helpers import peers, rows, sync, write

ITEM = "CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT);"

# The insert, update and delete triggers of ``item`` exactly as peersync 0.1.0 (before the
# SKIP_ALL floor) wrote them: the guard probes the tracking table whenever a floor is set.
_FLOOR = "(SELECT floor FROM _peersync_clock WHERE id = 0)"
_GUARD = (
    f'{_FLOOR} IS NULL OR NOT EXISTS (SELECT 1 FROM "_peersync_t_item" AS t'
    f' WHERE t.k0 = {{row}}."id" AND t.lt > {_FLOOR})'
)
_NOW = "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)"
_KEEP = (
    "crep = CASE WHEN del = 1 THEN NULL WHEN ctick IS NULL THEN urep ELSE crep END,"
    " ctick = CASE WHEN del = 1 THEN NULL WHEN ctick IS NULL THEN COALESCE(utick, lt) ELSE ctick END"
)


def _upsert(row: str, deleted: int, creation: str) -> str:
    return (
        f'INSERT INTO "_peersync_t_item" (k0, lt, ctime, del) VALUES ({row}."id", last_insert_rowid(), {_NOW},'
        f" {deleted}) ON CONFLICT (k0) DO UPDATE SET lt = excluded.lt, urep = NULL, utick = NULL, {creation},"
        f" ctime = MAX(excluded.ctime, ctime + 1), del = {deleted}, scope = NULL"
    )


_SAME = 'OLD."id" IS NEW."id" COLLATE BINARY'
OLD_TRIGGERS = [
    f'CREATE TRIGGER "_peersync_ins_item" AFTER INSERT ON "item" WHEN {_GUARD.format(row="NEW")} BEGIN'
    f' INSERT INTO _peersync_log (tbl, k0) VALUES (1, NEW."id"); {_upsert("NEW", 0, "crep = NULL, ctick = NULL")};'
    " END",
    f'CREATE TRIGGER "_peersync_upd_item" AFTER UPDATE ON "item" WHEN NOT ({_SAME} AND OLD."name" IS NEW."name"'
    f" COLLATE BINARY) AND ({_GUARD.format(row='NEW')}) BEGIN"
    f' INSERT INTO _peersync_log (tbl, k0) SELECT 1, OLD."id" WHERE NOT ({_SAME});'
    f' UPDATE "_peersync_t_item" SET lt = last_insert_rowid(), urep = NULL, utick = NULL, {_KEEP},'
    f' ctime = MAX({_NOW}, ctime + 1), del = 1, scope = NULL WHERE k0 = OLD."id" AND NOT ({_SAME});'
    f' INSERT INTO _peersync_log (tbl, k0) VALUES (1, NEW."id"); {_upsert("NEW", 0, _KEEP)}; END',
    f'CREATE TRIGGER "_peersync_del_item" AFTER DELETE ON "item" WHEN {_GUARD.format(row="OLD")} BEGIN'
    f' INSERT INTO _peersync_log (tbl, k0) VALUES (1, OLD."id"); {_upsert("OLD", 1, _KEEP)}; END',
]


def _triggers(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        names = ("_peersync_ins_item", "_peersync_upd_item", "_peersync_del_item")
        return [conn.execute("SELECT sql FROM sqlite_master WHERE name = ?", (n,)).fetchone()[0] for n in names]
    finally:
        conn.close()


def _downgrade(path: Path) -> None:
    """Give ``path`` the triggers an earlier version provisioned."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN")
        for name in ("_peersync_ins_item", "_peersync_upd_item", "_peersync_del_item"):
            conn.execute(f'DROP TRIGGER "{name}"')
        for ddl in OLD_TRIGGERS:
            conn.execute(ddl)
        conn.execute("COMMIT")
    finally:
        conn.close()


def test_the_earlier_guard_is_what_legacy_generation_writes(make_db: Callable[..., Path]) -> None:
    """The literal text above is the one ``trigger_sql(legacy=True)`` accepts."""
    (a,) = peers(make_db, ITEM, ["item"], names="a")
    assert _triggers(a) != OLD_TRIGGERS  # provisioning now writes the new guard
    _downgrade(a)
    assert _triggers(a) == OLD_TRIGGERS


def test_a_database_with_the_earlier_triggers_is_current_and_syncs(make_db: Callable[..., Path]) -> None:
    a, b, c = peers(make_db, ITEM, ["item"])
    _downgrade(b)
    write(a, "INSERT INTO item VALUES (1, 'one')", "INSERT INTO item VALUES (2, 'two')")
    sync(a, b)  # not refused as "out of date" (RepairNeeded)
    assert rows(b, "item") == [(1, "one"), (2, "two")]
    # Local writes under the earlier triggers are tracked and travel on.
    write(b, "UPDATE item SET name = 'uno' WHERE id = 1", "DELETE FROM item WHERE id = 2")
    write(b, "INSERT INTO item VALUES (3, 'three')")
    sync(b, c)
    sync(c, a)
    assert rows(a, "item") == rows(b, "item") == rows(c, "item") == [(1, "uno"), (3, "three")]
    assert _triggers(b) == OLD_TRIGGERS
    again = sync(a, b)
    assert (again.sent_a_to_b, again.sent_b_to_a) == (0, 0)


class _TriggerBetweenBatches:
    """The destination peer, with another program creating a trigger of its own in the
    database between the session's first and second batch."""

    def __init__(self, peer: peersync.Database, path: Path) -> None:
        self.peer, self.path, self.batches = peer, path, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.peer, name)

    def apply(self, scope: str, data: bytes, handler: Any) -> Any:
        self.batches += 1
        if self.batches == 2:
            write(
                self.path,
                "CREATE TRIGGER count_items AFTER INSERT ON item BEGIN INSERT INTO seen VALUES (NEW.id, 1); END",
            )
        return self.peer.apply(scope, data, handler)


def test_a_trigger_created_during_a_session_still_has_its_effects_tracked(
    make_db: Callable[..., Path],
) -> None:
    """The session read the destination's scope when the database had no trigger of its
    own; a trigger created since by another program makes the apply probe again, so what it
    changes is a local change that reaches the other peers."""
    schema = ITEM + "CREATE TABLE seen (id INTEGER PRIMARY KEY, n INTEGER);"
    a, b, c = peers(make_db, schema, ["item", "seen"])
    write(a, "INSERT INTO item VALUES (1, 'one')", "INSERT INTO item VALUES (2, 'two')")
    with peersync.connect(a) as x, peersync.connect(b) as y:
        hooked = _TriggerBetweenBatches(y, b)
        peersync.sync(x, hooked, "s", direction="push", batch_size=1)  # type: ignore[arg-type]
    assert hooked.batches >= 2
    assert rows(b, "seen") == [(2, 1)]
    sync(b, c)
    assert rows(c, "seen") == [(2, 1)]
    assert rows(c, "item") == [(1, "one"), (2, "two")]


def test_the_floor_is_cleared_after_an_apply(make_db: Callable[..., Path]) -> None:
    """SKIP_ALL lives only inside the apply's transaction: later local writes are tracked."""
    a, b = peers(make_db, ITEM, ["item"], names="ab")
    write(a, "INSERT INTO item VALUES (1, 'one')")
    sync(a, b)
    conn = sqlite3.connect(b)
    try:
        assert conn.execute("SELECT floor FROM _peersync_clock").fetchone() == (None,)
    finally:
        conn.close()
    assert SKIP_ALL < 0
    write(b, "INSERT INTO item VALUES (2, 'two')")
    sync(a, b)
    assert rows(a, "item") == [(1, "one"), (2, "two")]
