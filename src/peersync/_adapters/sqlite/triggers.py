"""The DDL of a tracked table: its tracking table, the triggers that stamp
every change any program makes (and note the rows ``INSERT OR REPLACE``
evicts), filling the tracking of rows that exist at provisioning, tracking
what changed while the triggers were lost (``repair``), and dropping it all.

The objects and what the triggers record are described in
:mod:`~peersync._adapters.sqlite.schema`; the SQL peersync runs on a tracked
table when it reads or applies changes stays there, on :class:`Tracked`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from .schema import EVICT, KEEP_CREATION, LOG, NOW_MS, PREFIX, Tracked, q


def create_sql(tab: Tracked) -> list[str]:
    s, trk = tab.schema, q(tab.tracking)
    meta = (
        "lt INTEGER NOT NULL, urep INTEGER, utick INTEGER, crep INTEGER, ctick INTEGER,"
        " ctime INTEGER NOT NULL, del INTEGER NOT NULL DEFAULT 0, scope INTEGER, mw INTEGER"
    )
    if tab.rowid_key:
        table = f"CREATE TABLE {trk} (k0 INTEGER PRIMARY KEY, {meta})"
    else:
        decl = ", ".join(f"k{i}{tab.kcoll(i)}" for i in range(len(s.key)))
        keys = ", ".join(tab.kcols)
        table = f"CREATE TABLE {trk} ({decl}, {meta}, PRIMARY KEY ({keys})) WITHOUT ROWID"
    return [table, *trigger_sql(tab)]


def backfill_sql(tab: Tracked) -> list[str]:
    """Track rows that exist at provisioning: log entries after tick ``?`` in
    key order, then tracking rows for them."""
    keys = ", ".join(q(k) for k in tab.schema.key)
    kc = ", ".join(tab.kcols)
    return [
        f"INSERT INTO {LOG} (tbl, {kc}) SELECT {tab.tid}, {keys} FROM {q(tab.name)} ORDER BY {keys}",
        f"INSERT INTO {q(tab.tracking)} ({kc}, lt, ctime, del)"
        f" SELECT {kc}, lt, {NOW_MS}, 0 FROM {LOG} WHERE lt > ? AND tbl = {tab.tid}",
    ]


def trigger_sql(tab: Tracked, legacy: bool = False) -> list[str]:
    """The triggers' DDL; ``legacy``: as earlier versions wrote them, whose
    guard probes the tracking table whatever the floor (still correct
    with :data:`SKIP_ALL`, only slower), so databases holding them stay valid."""
    s, trk, t, clock = tab.schema, q(tab.tracking), tab.name, f"{PREFIX}clock"
    ins, upd, dele = (q(n) for n in tab.trigger_names()[:3])
    kc = ", ".join(tab.kcols)
    # The log entry just inserted is the change's tick.
    tick = "last_insert_rowid()"
    floor = f"(SELECT floor FROM {clock} WHERE id = 0)"

    def guard(row: str) -> str:
        probe = f"NOT EXISTS (SELECT 1 FROM {trk} AS t WHERE {tab.key_match('t', row)} AND t.lt > {floor})"
        return f"{floor} IS NULL OR {probe}" if legacy else f"{floor} IS NULL OR ({floor} >= 0 AND {probe})"

    def vals(row: str) -> str:
        return ", ".join(f"{row}.{q(c)}" for c in s.key)

    # A change to a live row keeps its incarnation's creation version; a
    # change on top of a tombstone starts a new incarnation. Change times
    # only grow along a row's history (max(now, previous + 1)), so a change
    # made on top of another always compares later, whatever the clocks.
    keep_creation = KEEP_CREATION

    def log(row: str, cond: str = "") -> str:
        if cond:
            return f"INSERT INTO {LOG} (tbl, {kc}) SELECT {tab.tid}, {vals(row)} WHERE {cond}"
        return f"INSERT INTO {LOG} (tbl, {kc}) VALUES ({tab.tid}, {vals(row)})"

    # BINARY: a NOCASE column edited only in letter case is still a change.
    key_same = " AND ".join(f"OLD.{q(k)} IS NEW.{q(k)} COLLATE BINARY" for k in s.key)
    # typeof: in a column without type affinity (or NUMERIC), 1 -> 1.0 is a
    # change of storage class that IS calls equal.
    changed = " AND ".join(
        f"OLD.{q(c)} IS NEW.{q(c)} COLLATE BINARY"
        + (f" AND typeof(OLD.{q(c)}) = typeof(NEW.{q(c)})" if kind in ("blob", "numeric") else "")
        for c, kind in zip(s.columns, s.types, strict=True)
    )

    recase = "".join(f"{x}, " for x in tab.key_case_sets())

    def upsert(row: str, deleted: int, creation: str) -> str:
        return (
            f"INSERT INTO {trk} ({kc}, lt, ctime, del) VALUES ({vals(row)}, {tick}, {NOW_MS}, {deleted})"
            f" ON CONFLICT ({kc}) DO UPDATE SET {recase}lt = excluded.lt, urep = NULL, utick = NULL, {creation},"
            f" ctime = MAX(excluded.ctime, ctime + 1), del = {deleted}, scope = NULL"
        )

    new_incarnation = "crep = NULL, ctick = NULL"
    old_key = " AND ".join(f"{k} = OLD.{q(c)}" for k, c in zip(tab.kcols, s.key, strict=True))
    evict, before = _eviction(tab, keep_creation)
    bi, bu = (q(n) for n in tab.trigger_names()[3:])
    extra = (
        [
            f"CREATE TRIGGER {bi} BEFORE INSERT ON {q(t)} BEGIN {before('NEW')} END",
            f"CREATE TRIGGER {bu} BEFORE UPDATE ON {q(t)} BEGIN {before('OLD')} END",
        ]
        if tab.uniques
        else []
    )
    return [
        *extra,
        f"CREATE TRIGGER {ins} AFTER INSERT ON {q(t)} WHEN {guard('NEW')} BEGIN"
        f" {evict}{log('NEW')}; {upsert('NEW', 0, new_incarnation)}; END",
        f"CREATE TRIGGER {upd} AFTER UPDATE ON {q(t)} WHEN NOT ({changed}) AND ({guard('NEW')}) BEGIN"
        f" {evict}{log('OLD', f'NOT ({key_same})')};"
        f" UPDATE {trk} SET lt = {tick}, urep = NULL, utick = NULL, {keep_creation},"
        f" ctime = MAX({NOW_MS}, ctime + 1), del = 1, scope = NULL WHERE {old_key}"
        f" AND NOT ({key_same});"
        f" {log('NEW')}; {upsert('NEW', 0, keep_creation)}; END",
        f"CREATE TRIGGER {dele} AFTER DELETE ON {q(t)} WHEN {guard('OLD')} BEGIN"
        f" {log('OLD')}; {upsert('OLD', 1, keep_creation)}; END",
    ]


def _eviction(tab: Tracked, keep_creation: str) -> tuple[str, Callable[[str], str]]:
    """``INSERT OR REPLACE`` (and ``UPDATE OR REPLACE``) deletes rows that
    collide on a UNIQUE index without firing delete triggers. A BEFORE
    trigger notes such rows; the AFTER trigger turns each noted row that is
    really gone into a tombstone (under OR IGNORE or ABORT it is not gone,
    and nothing happens), then forgets the notes."""
    if not tab.uniques:
        return "", lambda row: ""
    s, kc = tab.schema, ", ".join(tab.kcols)
    keys = ", ".join(q(k) for k in s.key)
    after = "".join(f"{st}; " for st in tab.evictions_sql(keep_creation))

    def before(own: str) -> str:
        out = ""
        for i, cols in enumerate(tab.uniques):
            same = " AND ".join(f"{q(c)} = NEW.{q(c)} COLLATE {coll}" for c, coll in cols)
            itself = " AND ".join(f"{q(k)} IS {own}.{q(k)}" for k in s.key)
            out += (
                f"INSERT INTO {EVICT} (tbl, ix, {kc}) SELECT {tab.tid}, {i}, {keys} FROM {q(s.name)}"
                f" WHERE {same} AND NOT ({itself}); "
            )
        return out

    return after, before


def triggers(tab: Tracked) -> dict[str, str]:
    """The triggers this table needs: name -> the exact ``CREATE TRIGGER``
    text (SQLite keeps it verbatim in ``sqlite_master``)."""
    return _named(tab, trigger_sql(tab))


def legacy_triggers(tab: Tracked) -> dict[str, str]:
    """:meth:`triggers` as databases provisioned by earlier versions hold them: still current."""
    return _named(tab, trigger_sql(tab, legacy=True))


def _named(tab: Tracked, ddl: list[str]) -> dict[str, str]:
    names = tab.trigger_names()
    return dict(zip(names[3:] + names[:3] if tab.uniques else names[:3], ddl, strict=True))


def reconcile_sql(tab: Tracked) -> list[str]:
    """Track what changed while the triggers were missing or stale: a row
    with no live tracking row was inserted, a live tracking row with no row
    was deleted. Each becomes a local change: a log entry after tick
    ``:base`` (in key order), then its tracking row, as the triggers would
    have written it (a row inserted on a tombstone starts a new incarnation)."""
    s, trk, kc = tab.schema, q(tab.tracking), ", ".join(tab.kcols)
    keys = ", ".join(f"u.{q(k)}" for k in s.key)
    live = f"EXISTS (SELECT 1 FROM {trk} AS t WHERE {tab.key_match('t', 'u')} AND t.del = 0)"
    row = f"EXISTS (SELECT 1 FROM {q(s.name)} AS u WHERE {tab.key_match('t', 'u')})"
    logged = f"EXISTS (SELECT 1 FROM {q(s.name)} AS u WHERE {tab.key_match('l', 'u')})"
    recase = "".join(f"{x}, " for x in tab.key_case_sets())  # a NOCASE key re-inserted in another case
    return [
        f"INSERT INTO {LOG} (tbl, {kc}) SELECT {tab.tid}, {keys} FROM {q(s.name)} AS u WHERE NOT {live}"
        f" ORDER BY {keys}",
        f"INSERT INTO {LOG} (tbl, {kc}) SELECT {tab.tid}, {kc} FROM {trk} AS t WHERE t.del = 0 AND NOT {row}"
        f" ORDER BY {kc}",
        f"INSERT INTO {trk} ({kc}, lt, ctime, del)"
        f" SELECT {', '.join(f'l.{k}' for k in tab.kcols)}, l.lt, {NOW_MS}, NOT {logged}"
        f" FROM {LOG} AS l WHERE l.lt > :base AND l.tbl = {tab.tid}"
        f" ON CONFLICT ({kc}) DO UPDATE SET {recase}lt = excluded.lt, urep = NULL, utick = NULL,"
        f" {KEEP_CREATION}, ctime = MAX(excluded.ctime, ctime + 1), del = excluded.del, scope = NULL",
    ]


def restamp_all_sql(tab: Tracked) -> list[str]:
    """Make every live row whose local tick is at most ``:base`` a new
    local change (a log entry after ``:top``, the clock before), keeping
    its creation and its change time: a row that did not really change
    then never beats a real edit made elsewhere."""
    trk, kc = q(tab.tracking), ", ".join(tab.kcols)
    return [
        f"INSERT INTO {LOG} (tbl, {kc}) SELECT {tab.tid}, {kc} FROM {trk} WHERE del = 0 AND lt <= :base ORDER BY {kc}",
        f"INSERT INTO {trk} ({kc}, lt, ctime, del)"
        f" SELECT {', '.join(f'l.{k}' for k in tab.kcols)}, l.lt, 0, 0"
        f" FROM {LOG} AS l WHERE l.lt > :top AND l.tbl = {tab.tid}"
        f" ON CONFLICT ({kc}) DO UPDATE SET lt = excluded.lt, urep = NULL, utick = NULL, scope = NULL,"
        " crep = CASE WHEN ctick IS NULL THEN urep ELSE crep END,"
        " ctick = CASE WHEN ctick IS NULL THEN COALESCE(utick, lt) ELSE ctick END",
    ]


def drop_sql(tab: Tracked) -> list[str]:
    """Remove the tracking of this table; the log's newest entry stays (as
    table 0) so ticks never go back."""
    top = f"(SELECT max(lt) FROM {LOG})"
    return [
        *(f"DROP TRIGGER IF EXISTS {q(n)}" for n in tab.trigger_names()),
        f"DROP TABLE IF EXISTS {q(tab.tracking)}",
        f"DELETE FROM {LOG} WHERE tbl = {tab.tid} AND lt < {top}",
        f"UPDATE {LOG} SET tbl = 0 WHERE tbl = {tab.tid}",
    ]


def trigger_faults(conn: sqlite3.Connection, tables: list[Tracked]) -> dict[str, str]:
    """Tables whose peersync triggers are not exactly what they need, each
    with ``"lost"`` (an insert, update or delete trigger is missing from the
    table: it was rebuilt, or its triggers dropped; writes since went
    untracked) or ``"stale"`` (present, but not as made for the table as it is
    now, e.g. after a UNIQUE index was added or dropped). One read of
    ``sqlite_master``."""
    wanted = {t.name: triggers(t) for t in tables}
    legacy = {t.name: legacy_triggers(t) for t in tables}
    names = [n for t in tables for n in t.trigger_names()]
    have: dict[str, tuple[str, str]] = {}
    for i in range(0, len(names), 500):
        chunk = names[i : i + 500]
        have.update(
            (n, (tbl, sql))
            for n, tbl, sql in conn.execute(
                f"SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'trigger'"
                f" AND name IN ({', '.join('?' * len(chunk))})",
                chunk,
            )
        )
    out = {}
    for t in tables:
        want = wanted[t.name]
        if any(have.get(n, ("", ""))[0] != t.name for n in t.trigger_names()[:3]):
            out[t.name] = "lost"
        elif any(have.get(n) not in ((t.name, sql), (t.name, legacy[t.name][n])) for n, sql in want.items()) or any(
            n in have for n in t.trigger_names() if n not in want
        ):
            out[t.name] = "stale"
    return out
