"""Keeping a PostgreSQL scope's tracking right across a new replica id
(``reidentify``), a change of its tables' columns (``migrate``) and
triggers lost with a rebuilt table or disabled (``repair``).

Each call is one transaction: a failure leaves everything as it was. The
tables are locked against writers (``SHARE ROW EXCLUSIVE``) while their
triggers are recreated and the rows changed meanwhile are stamped, and the
stamps take their ticks like any writer (``take_ticks``), so the snapshot
bound stays exact.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

import psycopg

from peersync._adapters.sql.meta import PREFIX, Meta
from peersync._adapters.sql.retrack import key_changed, plan_retrack, save_retrack
from peersync._engine.errors import ScopeError
from peersync._engine.model import RepairReport

from . import schema as S
from .schema import KEEP_CREATION, NOW_MS, SCHEMA, TICK, Scope, Tracked, q


class PostgresPeer(Protocol):
    """What of the peer (``peer.PostgresPeer``) these calls need."""

    url: str
    meta: Meta
    _scopes: dict[str, Scope]

    def _txn(self, isolation: str = ...) -> AbstractContextManager[psycopg.Connection[Any]]: ...

    def _scope(self, name: str, *, reload: bool = False) -> Scope: ...


_LOCAL = "urep = NULL, utick = NULL, scope = NULL, mw = NULL"


def definition(t: Tracked) -> str:
    """A tracked table's shape as ``_peersync_tracked`` stores it here."""
    return json.dumps([t.qualified, list(t.schema.columns), list(t.schema.key), list(t.schema.types)])


def _key_shape(stored: str) -> list[tuple[str, str]]:
    _, cols, key, types = json.loads(stored)
    return [(k, types[cols.index(k)]) for k in key]


def reidentify(peer: PostgresPeer, scope: str, *, moved: bool) -> bytes:
    """See :meth:`PostgresPeer.reidentify`."""
    with peer._txn() as conn:
        sc = peer._scope(scope, reload=True)
        if moved:
            return sc.rid
        peer.meta.load_replicas()
        old = peer.meta.rep_index(sc.rid)
        for t in sc.tables:
            # Versions of this replica that came back through the scope name it
            # implicitly (NULL): they keep naming the old id.
            conn.execute(
                f"UPDATE {t.tracking} SET urep = %s WHERE scope = %s AND urep IS NULL AND utick IS NOT NULL",
                (old, sc.idx),
            )
            conn.execute(
                f"UPDATE {t.tracking} SET crep = %s WHERE scope = %s AND crep IS NULL AND ctick IS NOT NULL",
                (old, sc.idx),
            )
        new = os.urandom(16)
        conn.execute(f"UPDATE {PREFIX}scopes SET replica_id = %s WHERE name = %s", (new, scope))
    peer._scopes.pop(scope, None)
    return new


def retrack(
    peer: PostgresPeer, scope: str, *, migrate: bool, restamp: bool, tables: Sequence[str] | None
) -> RepairReport:
    """``migrate`` and ``repair`` (see :meth:`PostgresPeer.migrate`)."""
    with peer._txn() as conn:
        plan = plan_retrack(
            peer.meta, scope, peer.url, lambda n: S.introspect(conn, n), migrate=migrate, tables=tables,
            define=definition, ident=lambda t: t.qualified, key_shape=_key_shape,
        )  # fmt: skip
        for t in plan.current:
            have = _tracking_key(conn, t)
            if have != list(t.key_types):
                raise ScopeError(key_changed(t.name, scope, ", ".join(have), ", ".join(t.key_types)))
        conn.execute(f"SELECT {SCHEMA}.{PREFIX}take_ticks()")
        retracked, untracked = [], []
        inserted = deleted = restamped = 0
        for t in plan.current:
            lost = not _triggers_ok(conn, t)
            stale = _functions_stale(conn, t)
            if not lost and not plan.changed(t) and not restamp and not stale:
                continue
            conn.execute(f"LOCK TABLE {t.qualified} IN SHARE ROW EXCLUSIVE MODE")
            if lost or plan.changed(t) or stale:
                for name in t.trigger_names():
                    conn.execute(f"DROP TRIGGER IF EXISTS {name} ON {t.qualified}")
                for ddl in t.create_sql()[2:]:  # the functions and triggers, not the tracking table
                    conn.execute(ddl)
                retracked.append(t.name)
            if lost:
                untracked.append(t.name)
                inserted += _rowcount(conn.execute(_missing_sql(t)))
                deleted += _rowcount(conn.execute(_vanished_sql(t)))
            if restamp:
                restamp_sql = f"UPDATE {t.tracking} AS t SET lt = nextval('{TICK}'), {_LOCAL}, {KEEP_CREATION}"
                restamped += _rowcount(conn.execute(restamp_sql + " WHERE NOT t.del"))
        save_retrack(peer.meta, scope, plan)
    peer._scopes.clear()
    return RepairReport(scope, plan.reshaped, tuple(retracked), tuple(untracked), inserted, deleted, restamped)


def _rowcount(cur: Any) -> int:
    return max(0, int(cur.rowcount))


def _functions_stale(conn: Any, t: Tracked) -> bool:
    """Does a trigger function hold an earlier text? Earlier texts still
    track correctly (they are accepted as current), except on a table with a
    column named like one of their aliases (``n``, ``o``, ``now_ms``), whose
    writes they break: ``repair`` replaces them with the current text."""
    for ddl in t.create_sql()[2:]:
        if ddl.startswith("CREATE OR REPLACE FUNCTION"):
            name = ddl.split()[4].split("(")[0].split(".")[-1]
            row = conn.execute(
                "SELECT p.prosrc FROM pg_proc AS p JOIN pg_namespace AS n ON n.oid = p.pronamespace"
                " WHERE n.nspname = %s AND p.proname = %s",
                (SCHEMA, name),
            ).fetchone()
            if row is not None and row[0] != ddl.split("$f$")[1]:
                return True
    return False


def _triggers_ok(conn: Any, t: Tracked) -> bool:
    (n,) = conn.execute(
        "SELECT count(*) FROM pg_trigger WHERE tgrelid = %s::regclass AND tgname = ANY(%s) AND tgenabled = 'A'",
        (t.qualified, t.trigger_names()),
    ).fetchone()
    return int(n) == len(t.trigger_names())


def _tracking_key(conn: Any, t: Tracked) -> list[str]:
    return [
        r[0]
        for r in conn.execute(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = %s::regclass"
            " AND attname = ANY(%s) ORDER BY attnum",
            (t.tracking, t.kcols),
        ).fetchall()
    ]


def _missing_sql(t: Tracked) -> str:
    """Rows written while the table was untracked (no live tracking row) become local inserts."""
    kc = ", ".join(t.kcols)
    keys = ", ".join(f"u.{q(c)}" for c in t.schema.key)
    return (
        f"INSERT INTO {t.tracking} AS t ({kc}, lt, ctime, del) SELECT {keys}, nextval('{TICK}'), {NOW_MS}, false"
        f" FROM {t.qualified} AS u LEFT JOIN {t.tracking} AS x ON {t.key_match('x', 'u')}"
        f" WHERE x.{t.kcols[0]} IS NULL OR x.del"
        f" ON CONFLICT ({kc}) DO UPDATE SET lt = excluded.lt, {_LOCAL}, {KEEP_CREATION},"
        " ctime = greatest(excluded.ctime, t.ctime + 1), del = false"
    )


def _vanished_sql(t: Tracked) -> str:
    """Rows deleted while the table was untracked (a live tracking row, no row) become local deletes."""
    return (
        f"UPDATE {t.tracking} AS t SET lt = nextval('{TICK}'), {_LOCAL}, {KEEP_CREATION},"
        f" ctime = greatest({NOW_MS}, t.ctime + 1), del = true"
        f" WHERE NOT t.del AND NOT EXISTS (SELECT 1 FROM {t.qualified} AS u WHERE {t.key_match('t', 'u')})"
    )
