"""Keeping a MariaDB scope's tracking right across a new replica id
(``reidentify``), a change of its tables' columns (``migrate``), and
triggers lost with a rebuilt table or rows lost to ``TRUNCATE TABLE``,
which fires no trigger (``repair``: the vanished rows become local deletes).

MariaDB commits DDL on its own, so these cannot be one transaction. Each
table is handled under ``LOCK TABLES`` (no write lands between the new
triggers and the reconciliation), and the scope's stored shape is written
last: a failure halfway leaves the scope refusing to sync (``SchemaMismatch``
or ``RepairNeeded``, naming the command to run again), never syncing a
half-migrated shape. Running the command again finishes the job.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Protocol

from peersync._adapters.sql.meta import Meta
from peersync._adapters.sql.retrack import key_changed, plan_retrack, save_retrack
from peersync._engine.errors import ScopeError
from peersync._engine.model import RepairReport

from . import schema as S
from .conn import Conn, q
from .schema import FRESH_CREATION, KEEP_CREATION, LOG, NOW_MS, PREFIX, Scope, Tracked


class MySQLPeer(Protocol):
    """What of the peer (``peer.MySQLPeer``) these calls need."""

    url: str
    conn: Conn
    meta: Meta
    _scopes: dict[str, Scope]

    def _scope(self, name: str, *, reload: bool = False) -> Scope: ...

    def _cascades(self) -> None: ...


_CHUNK = 5000
# Aliases of the user table and its tracking table: LOCK TABLES wants each
# alias locked too, and no user table may carry one of them as its name.
U, K = PREFIX + "u", PREFIX + "k"


def reidentify(peer: MySQLPeer, scope: str, *, moved: bool) -> bytes:
    """A new replica id for ``scope`` (a database restored from a dump of
    another, or a copy of one); with ``moved``, keep it (the same database
    moved to another server). A server database keeps no record of the last
    peersync write before a copy, so every local change becomes a change of
    the new id (peers that hold the same rows from the original meet them as
    identical), and rows that arrived from peers keep their versions."""
    conn, meta = peer.conn, peer.meta
    with conn.errors(), conn.txn():
        sc = peer._scope(scope, reload=True)
        if moved:
            return sc.rid
        meta.load_replicas()
        old = meta.rep_index(sc.rid)  # what rep 0 ("this replica") meant until now
        for t in sc.tables:
            conn.execute(
                f"UPDATE {q(t.tracking)} SET urep = %s WHERE scope = %s AND urep = 0 AND utick IS NOT NULL",
                (old, sc.idx),
            )
            conn.execute(
                f"UPDATE {q(t.tracking)} SET crep = %s WHERE ctick IS NOT NULL AND COALESCE(crep, 0) = 0", (old,)
            )
        conn.execute(f"UPDATE {S.PENDING} SET vrep = %s WHERE scope = %s AND vrep = 0", (old, sc.idx))
        conn.execute(f"UPDATE {S.PENDING} SET srep = %s WHERE scope = %s AND srep = 0", (old, sc.idx))
        new = os.urandom(16)
        conn.execute(f"UPDATE {PREFIX}scopes SET replica_id = %s WHERE name = %s", (new, scope))
    peer._scopes.pop(scope, None)
    return new


def retrack(peer: MySQLPeer, scope: str, *, migrate: bool, restamp: bool, tables: Sequence[str] | None) -> RepairReport:
    """``migrate`` and ``repair`` (see :meth:`MySQLPeer.migrate`)."""
    conn, meta = peer.conn, peer.meta
    with conn.errors():
        plan = plan_retrack(meta, scope, peer.url, lambda n: S.introspect(conn, n), migrate=migrate, tables=tables)
        for t in plan.current:
            have = _tracking_key(peer, t)
            if have != [d.lower() for d in t.key_decl]:
                raise ScopeError(key_changed(t.name, scope, ", ".join(have), ", ".join(t.key_decl)))
        faults = S.trigger_faults(conn, plan.current)
        # TRUNCATE TABLE fires no trigger: rows gone, triggers kept. Sessions
        # probe the ends of the key range (S.emptied); repair looks at every row.
        emptied = {t.name for t in plan.current if conn.execute(_vanished_sql(t) + " LIMIT 1").fetchone()}
        retracked, untracked = [], []
        inserted = deleted = restamped = 0
        for t in plan.current:
            redo = t.name in faults or plan.changed(t)
            if not redo and not restamp and t.name not in emptied:
                continue
            _lock(peer, t)
            try:
                if redo:
                    for name in t.trigger_names():
                        conn.execute(f"DROP TRIGGER IF EXISTS {q(name)}")
                    for ddl in t.trigger_sql():
                        conn.execute(ddl)
                    retracked.append(t.name)
                if t.name in faults:
                    untracked.append(t.name)
                    inserted += _stamp(peer, t, _missing_sql(t), gone=False)
                    deleted += _stamp(peer, t, _vanished_sql(t), gone=True)
                elif t.name in emptied:
                    untracked.append(t.name)
                    deleted += _stamp(peer, t, _vanished_sql(t), gone=True)
                if restamp:
                    every = f"SELECT {_ukeys(t)} FROM {q(t.name)} AS {U}"
                    restamped += _stamp(peer, t, every, gone=False, keep=True)
            finally:
                conn.execute("UNLOCK TABLES")
        with conn.txn():
            save_retrack(meta, scope, plan)
        peer._cascades()
        S.seal(conn)
    peer._scopes.clear()  # scopes sharing a table see its new triggers and shape
    return RepairReport(scope, plan.reshaped, tuple(retracked), tuple(untracked), inserted, deleted, restamped)


def _tracking_key(peer: MySQLPeer, t: Tracked) -> list[str]:
    """The tracking table's key columns as declared (type and collation)."""
    rows = peer.conn.execute(
        "SELECT column_type, collation_name FROM information_schema.columns WHERE table_schema = DATABASE()"
        " AND table_name = %s AND column_name IN (" + ", ".join(["%s"] * len(t.kcols)) + ") ORDER BY ordinal_position",
        (t.tracking, *t.kcols),
    ).fetchall()
    return [S.key_declaration(ct, coll).lower() for ct, coll in rows]


def _lock(peer: MySQLPeer, t: Tracked) -> None:
    peer.conn.execute(
        f"LOCK TABLES {q(t.name)} WRITE, {q(t.name)} AS {U} WRITE, {q(t.tracking)} WRITE, {q(t.tracking)} AS {K} WRITE,"
        f" {LOG} WRITE, {PREFIX}tracked WRITE"
    )


def _ukeys(t: Tracked) -> str:
    return ", ".join(f"{U}.{q(k)}" for k in t.schema.key)


def _match(t: Tracked) -> str:
    return " AND ".join(f"{U}.{q(c)} = {K}.{k}" for c, k in zip(t.schema.key, t.kcols, strict=True))


def _missing_sql(t: Tracked) -> str:
    """Rows written while the table was untracked: no live tracking row."""
    return (
        f"SELECT {_ukeys(t)} FROM {q(t.name)} AS {U} LEFT JOIN {q(t.tracking)} AS {K} ON {_match(t)}"
        f" WHERE {K}.{t.kcols[0]} IS NULL OR {K}.del = 1"
    )


def _vanished_sql(t: Tracked) -> str:
    """Rows deleted while the table was untracked: a live tracking row and no row."""
    keys = ", ".join(f"{K}.{k}" for k in t.kcols)
    return (
        f"SELECT {keys} FROM {q(t.tracking)} AS {K} LEFT JOIN {q(t.name)} AS {U} ON {_match(t)}"
        f" WHERE {K}.del = 0 AND {U}.{q(t.schema.key[0])} IS NULL"
    )


def _stamp(peer: MySQLPeer, t: Tracked, select: str, *, gone: bool, keep: bool = False) -> int:
    """Make the rows ``select`` finds (their keys) new local changes: a log
    entry each, paired in order with the keys (the tables are locked, so the
    new entries are exactly those after ``top``). ``keep``: the change keeps
    its time (a restamp), else it is now."""
    conn = peer.conn
    keys: list[Any] = [tuple(r) for r in conn.execute(select).fetchall()]
    if not keys:
        return 0
    (now,) = conn.execute(f"SELECT {NOW_MS}").fetchone()
    creation = KEEP_CREATION if (gone or keep) else FRESH_CREATION
    when = "ctime = ctime" if keep else "ctime = GREATEST(VALUES(ctime), ctime + 1)"
    cols = ", ".join(t.kcols)
    for i in range(0, len(keys), _CHUNK):
        chunk = keys[i : i + _CHUNK]
        (top,) = conn.execute(f"SELECT COALESCE(MAX(id), 0) FROM {LOG}").fetchone()
        conn.execute(f"INSERT INTO {LOG} (tbl) VALUES " + ", ".join([f"({t.tid})"] * len(chunk)))
        ids = [r[0] for r in conn.execute(f"SELECT id FROM {LOG} WHERE id > %s ORDER BY id", (top,)).fetchall()]
        assert len(ids) == len(chunk), "the change log grew under LOCK TABLES"
        conn.executemany(
            f"INSERT INTO {q(t.tracking)} ({cols}, lt, ctime, del) VALUES ({', '.join(['%s'] * (len(t.kcols) + 3))})"
            f" ON DUPLICATE KEY UPDATE {creation}, lt = VALUES(lt), urep = NULL, utick = NULL, {when},"
            f" del = VALUES(del), scope = NULL",
            [(*k, lt, now, int(gone)) for k, lt in zip(chunk, ids, strict=True)],
        )
    return len(keys)
